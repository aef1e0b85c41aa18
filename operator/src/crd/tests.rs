use serde_json::{Value, json};

use super::*;

fn crd_json(kind: &str) -> Value {
    let crd = all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("kind is generated");
    serde_json::to_value(crd).expect("CRD serializes")
}

fn version(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]
}

/// Every `x-kubernetes-validations` rule anywhere in the schema.
fn rules(schema: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![schema];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(list)) = map.get("x-kubernetes-validations") {
                    found.extend(list.iter().filter_map(|r| r["rule"].as_str().map(str::to_owned)));
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

#[test]
fn four_kinds_in_the_streamlake_group_with_status_and_columns() {
    let expected = [
        ("Replay", "replays", "rpl"),
        ("Backfill", "backfills", "bf"),
        ("DlqInspection", "dlqinspections", "dlqi"),
        ("DqCheck", "dqchecks", "dqc"),
    ];
    assert_eq!(all().len(), 4);
    for (kind, plural, short) in expected {
        let crd = crd_json(kind);
        assert_eq!(crd["metadata"]["name"], format!("{plural}.streamlake.io"));
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["plural"], plural);
        assert_eq!(crd["spec"]["names"]["categories"], json!(["streamlake"]));
        assert_eq!(crd["spec"]["names"]["shortNames"], json!([short]));
        let v = version(&crd);
        assert_eq!(v["name"], VERSION);
        assert_eq!(
            v["subresources"]["status"],
            json!({}),
            "{kind} has a status subresource"
        );
        let columns: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, ["Dataset", "Phase", "Progress", "Age"], "{kind}");
        let rules = rules(&v["schema"]["openAPIV3Schema"]);
        assert!(
            rules.iter().any(|r| r == "self == oldSelf"),
            "{kind} spec is immutable"
        );
    }
}

#[test]
fn replay_schema_requires_exactly_one_start_and_an_end_after_it() {
    let crd = crd_json("Replay");
    let schema = &version(&crd)["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(schema["required"], json!(["dataset", "from"]));
    assert_eq!(schema["properties"]["dataset"]["pattern"], "^[a-z][a-z0-9_-]*$");
    let from = &schema["properties"]["from"];
    assert!(
        rules(from)
            .iter()
            .any(|r| r.contains("has(self.shiftBy)") && r.ends_with("== 1"))
    );
    assert_eq!(from["properties"]["timestamp"]["format"], "date-time");
    assert_eq!(
        from["properties"]["offsets"]["x-kubernetes-list-map-keys"],
        json!(["partition"])
    );
    // kube lists null among an optional enum's values, so the field may be left out.
    assert_eq!(
        from["properties"]["position"]["enum"],
        json!(["earliest", "latest", null])
    );
    let all_rules = rules(schema);
    assert!(
        all_rules
            .iter()
            .any(|r| r.contains("self.to.timestamp > self.from.timestamp"))
    );
    assert!(all_rules.iter().any(|r| r.contains("t.offset > f.offset")));
}

#[test]
fn schemas_are_structural_without_refs_or_untyped_nodes() {
    for crd in all() {
        let text = serde_json::to_string(&crd).expect("serializes");
        assert!(
            !text.contains("\"$ref\""),
            "{}: schemas must be inlined",
            crd.spec.names.kind
        );
        assert!(
            !text.contains("\"oneOf\""),
            "{}: no oneOf in structural schemas",
            crd.spec.names.kind
        );
    }
}

#[test]
fn an_example_replay_round_trips_through_the_types() {
    let manifest = json!({
        "apiVersion": "streamlake.io/v1alpha1",
        "kind": "Replay",
        "metadata": {"name": "orders-since-noon", "namespace": "streamlake"},
        "spec": {
            "dataset": "orders",
            "from": {"timestamp": "2025-01-31T12:00:00Z"},
            "to": {"offsets": [{"partition": 0, "offset": 1200}]},
            "groupEmptyTimeout": "2m"
        }
    });
    let replay: Replay = serde_json::from_value(manifest.clone()).expect("deserializes");
    assert_eq!(
        replay.spec.from.timestamp.as_deref(),
        Some("2025-01-31T12:00:00Z")
    );
    assert!(!replay.spec.dry_run, "dryRun defaults to false");
    let back = serde_json::to_value(&replay).expect("serializes");
    assert_eq!(back["spec"]["from"], manifest["spec"]["from"]);
    assert_eq!(back["spec"]["to"], manifest["spec"]["to"]);
}
