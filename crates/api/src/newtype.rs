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
