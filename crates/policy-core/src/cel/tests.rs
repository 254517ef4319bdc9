use serde_json::json;

use super::*;

fn evaluate(expression: &str, object: serde_json::Value) -> Result<serde_json::Value, CelError> {
    let mut scope = scope();
    scope.add_variable_from_value("object", from_json(&object));
    Program::compile(expression)?.evaluate_json(&scope)
}

#[test]
fn optional_syntax_is_enabled() {
    let pod = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}}});
    assert_eq!(
        evaluate(
            "object.metadata.?labels[?'app.kubernetes.io/name'].orValue('')",
            pod
        )
        .expect("succeeds"),
        json!("web")
    );
    assert_eq!(
        evaluate("object.?spec.?replicas.orValue(1)", json!({})).expect("succeeds"),
        json!(1)
    );
}

#[test]
fn kubernetes_libraries_and_dyn_are_available() {
    assert_eq!(
        evaluate(
            "quantity('1Gi').isGreaterThan(quantity('500Mi')) && dyn(1) == 1",
            json!({})
        )
        .expect("succeeds"),
        json!(true)
    );
}

#[test]
fn compile_errors_carry_the_position() {
    let error = Program::compile("object.spec ==")
        .expect_err("fails")
        .to_string();
    assert!(error.contains("<input>:1:"), "{error}");
}

#[test]
fn runtime_errors_are_errors() {
    let error = evaluate("object.spec.missing == 1", json!({"spec": {}})).expect_err("fails");
    assert!(error.to_string().contains("missing"), "{error}");
}

#[test]
fn result_type_is_checked() {
    let scope = scope();
    let error = Program::compile("1")
        .expect("succeeds")
        .evaluate_bool(&scope)
        .expect_err("fails");
    assert_eq!(error.to_string(), "expected a bool result, got int");
}

#[test]
fn json_round_trip() {
    let document = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
    assert_eq!(to_json(&from_json(&document)).expect("succeeds"), document);
}

#[test]
fn durations_print_like_go() {
    assert_eq!(
        evaluate("duration('1h2m3s')", json!({})).expect("succeeds"),
        json!("1h2m3s")
    );
    assert_eq!(
        evaluate("duration('1.5s')", json!({})).expect("succeeds"),
        json!("1.5s")
    );
}

#[test]
fn variable_references_are_found() {
    let program = Program::compile("[1].all(x, x == params.a) && object.b").expect("succeeds");
    assert!(program.references_variable("params"));
    assert!(program.references_variable("object"));
    assert!(!program.references_variable("oldObject"));
}

#[test]
fn selections_after_an_optional_one_stay_optional() {
    let object = json!({"a": {"b": {}}, "l": [1]});
    for (expression, expected) in [
        ("object.?a.b.c.orValue(1)", json!(1)),
        ("object.?x.b.orValue(2)", json!(2)),
        ("object.a.?b.hasValue()", json!(true)),
        ("object.?a.?missing.hasValue()", json!(false)),
        ("object.?l[5].orValue(3)", json!(3)),
        ("object.l[?0].orValue(3)", json!(1)),
        ("has(object.a.b)", json!(true)),
    ] {
        assert_eq!(
            evaluate(expression, object.clone()).expect("succeeds"),
            expected,
            "{expression}"
        );
    }
    assert!(evaluate("object.x.?b", object).is_err());
}

#[test]
fn optional_selection_chains_are_read_in_place_as_the_interpreter_would() {
    let object = json!({
        "spec": {"containers": [{"securityContext": {"capabilities": {"drop": ["ALL"]}}}, {}]},
        "n": null,
        "count": 3
    });
    for (expression, expected) in [
        // A plain prefix, then optional selections, then orValue on the chain.
        ("object.spec.?initContainers.orValue([])", json!([])),
        (
            "object.spec.containers.map(c, c.?securityContext.?capabilities.?drop.orValue([]))",
            json!([["ALL"], []]),
        ),
        (
            "object.spec.containers[0].?securityContext.capabilities.drop.orValue([])",
            json!(["ALL"]),
        ),
        ("object.spec.?containers.orValue([]).size()", json!(2)),
        // A null operand gives none; an optional operand is unwrapped once.
        ("object.n.?x.orValue(5)", json!(5)),
        ("optional.of(object).?count.orValue(0)", json!(3)),
        ("optional.none().?count.orValue(0)", json!(0)),
        ("object.?spec.hasValue()", json!(true)),
        // orValue on what is not an optional is the value itself.
        ("object.count.orValue(1)", json!(3)),
    ] {
        let result = evaluate(expression, object.clone());
        assert_eq!(result.ok(), Some(expected), "{expression}");
    }
    for failing in [
        // A missing field in the plain prefix is an error.
        "object.missing.?x.orValue(1)",
        // Selecting from a list or a number is no overload (a plain selection on a number
        // gives false, as the interpreter's does).
        "object.spec.containers.?x.orValue(1)",
        "object.count.x.?y.orValue(1)",
        "object.?count.?x.orValue(1)",
        // The value of an optional field is not unwrapped again.
        "{'a': optional.of({'b': 1})}.?a.?b.orValue(0)",
    ] {
        assert!(evaluate(failing, object.clone()).is_err(), "{failing}");
    }
}

#[test]
fn typed_object_construction_builds_maps() {
    assert_eq!(
        evaluate(
            "Object{metadata: Object.metadata{labels: {'a': 'b'}}, spec: Object.spec{?x: optional.none()}}",
            json!({})
        )
        .expect("succeeds"),
        json!({"metadata": {"labels": {"a": "b"}}, "spec": {}})
    );
}

#[test]
fn cel_bind_names_a_value_for_its_body() {
    assert_eq!(
        evaluate("cel.bind(x, object.a + 1, x * x)", json!({"a": 2})).expect("evaluates"),
        json!(9)
    );
    assert_eq!(
        evaluate("cel.bind(a, 1, cel.bind(b, a + 1, [a, b]))", json!({})).expect("evaluates"),
        json!([1, 2])
    );
}

#[test]
fn types_compare() {
    for (expression, expected) in [
        ("type(1) == int", true),
        ("type('a') == string", true),
        ("type(null) == null_type", true),
        ("type(object.a) != type(null)", true),
        ("type(object) == map && type([]) == list", true),
        ("type(1) == uint", false),
    ] {
        assert_eq!(
            evaluate(expression, json!({"a": 1})).expect("evaluates"),
            json!(expected),
            "{expression}"
        );
    }
}

#[test]
fn string_converts_booleans_like_cel_go() {
    assert_eq!(
        evaluate(
            "[string(true), string(object.a == 2), string(1), string('x'), string(ip('10.0.0.1'))]",
            json!({"a": 1})
        )
        .expect("evaluates"),
        json!(["true", "false", "1", "x", "10.0.0.1"])
    );
}
