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
