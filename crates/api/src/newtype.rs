//! Boilerplate shared by the wrapper types: most CRD specs are newtypes around a spec shared by
//! the cluster-scoped and namespaced kinds.

/// Implements `Deref` and `DerefMut` from wrapper types to the value they wrap:
/// `deref_to!(Target => A, B)` for newtypes (field `.0`), `deref_to!(Target => A.field)` for a
/// named field.
macro_rules! deref_to {
    ($target:ty => $($outer:ident),+ $(,)?) => {
        $($crate::newtype::deref_to!($target => $outer.0);)+
    };
    ($target:ty => $outer:ident . $field:tt) => {
        impl ::std::ops::Deref for $outer {
            type Target = $target;
            fn deref(&self) -> &$target {
                &self.$field
            }
        }
        impl ::std::ops::DerefMut for $outer {
            fn deref_mut(&mut self) -> &mut $target {
                &mut self.$field
            }
        }
    };
}

pub(crate) use deref_to;

/// Declares the two kinds of a `policies.kyverno.io` policy, the cluster-wide one and its
/// namespaced form: transparent newtypes of the same `spec` (with `Deref` to it) with the same
/// status, in category `kyverno` at version `v1beta1`, printing the `AGE` column and, when the
/// invocation starts with `ready,`, the `READY` one (`status.conditionStatus.ready`).
macro_rules! cluster_and_namespaced_kinds {
    (ready, $($rest:tt)*) => {
        $crate::newtype::cluster_and_namespaced_kinds!(
            @columns [r#"{"name":"READY","type":"string","jsonPath":".status.conditionStatus.ready"}"#]
            $($rest)*
        );
    };
    (
        @columns [$($column:tt)*]
        spec = $spec:ty,
        status = $status:tt,
        $(selectable = $selectable:tt,)?
        $(#[$cluster_meta:meta])+
        $cluster:ident = ($cluster_kind:tt, $cluster_short:tt),
        $(#[$namespaced_meta:meta])+
        $namespaced:ident = ($namespaced_kind:tt, $namespaced_short:tt) $(,)?
    ) => {
        $crate::newtype::cluster_and_namespaced_kinds!(
            @kind $(#[$cluster_meta])+ $cluster($spec) = ($cluster_kind, $cluster_short),
            [$(selectable = $selectable,)? status = $status, $(printcolumn = $column,)*]
        );
        $crate::newtype::cluster_and_namespaced_kinds!(
            @kind $(#[$namespaced_meta])+ $namespaced($spec) = ($namespaced_kind, $namespaced_short),
            [$(selectable = $selectable,)? namespaced, status = $status, $(printcolumn = $column,)*]
        );
        $crate::newtype::deref_to!($spec => $cluster, $namespaced);
    };
    (
        @kind $(#[$meta:meta])+ $name:ident($spec:ty) = ($kind:tt, $short:tt),
        [$($attributes:tt)*]
    ) => {
        $(#[$meta])+
        #[derive(
            ::kube::CustomResource,
            Clone,
            Debug,
            Default,
            PartialEq,
            ::serde::Serialize,
            ::serde::Deserialize,
            ::schemars::JsonSchema,
        )]
        #[kube(
            group = "policies.kyverno.io",
            version = "v1beta1",
            kind = $kind,
            shortname = $short,
            category = "kyverno",
            printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
            $($attributes)*
        )]
        #[serde(transparent)]
        pub struct $name(pub $spec);
    };
    ($($rest:tt)*) => {
        $crate::newtype::cluster_and_namespaced_kinds!(@columns [] $($rest)*);
    };
}

pub(crate) use cluster_and_namespaced_kinds;
