use serde_json::{Value, json};

use super::*;
use crate::contract::Contract;
use crate::names::DatasetName;

const RESERVED: [&str; 2] = ["_offset", "_key"];

fn orders() -> Contract {
    let schema: Value = serde_json::from_str(include_str!("../../../../contracts/orders.v1.json"))
        .expect("the shipped contract is JSON");
    Contract::from_schema(DatasetName::new("orders").expect("name"), 1, schema).expect("contract")
}

fn contract(schema: Value) -> Contract {
    Contract::from_schema(DatasetName::new("t").expect("name"), 1, schema).expect("contract")
}

/// The full validator's answer to the same question the fast check answers.
fn full_check(contract: &Contract, payload: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(fields)) => {
            !RESERVED.iter().any(|r| fields.contains_key(*r))
                && contract.violations(&Value::Object(fields)).is_empty()
        }
        _ => false,
    }
}

/// Asserts the one rule (fast "valid" implies full "valid"); returns the fast answer.
fn sound(contract: &Contract, payload: &[u8]) -> bool {
    let fast = contract.certainly_valid(payload, &RESERVED);
    assert!(
        !fast || full_check(contract, payload),
        "the fast check accepted what the full validator rejects: {}",
        String::from_utf8_lossy(payload)
    );
    // The key kept on the way is the one the full path reads, exactly when the event is certainly valid.
    let full_key = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|event| contract.partition_key(&event));
    assert_eq!(
        contract.certainly_valid_key(payload, &RESERVED),
        full_key.filter(|_| fast),
        "{}",
        String::from_utf8_lossy(payload)
    );
    // The members read on the way are the event's fields, each value's text parsing to the full path's value.
    let mut members = vec![(std::borrow::Cow::Borrowed("stale"), "1")];
    assert_eq!(
        contract.certainly_valid_members(payload, &RESERVED, &mut members),
        fast
    );
    if fast {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(payload) else {
            panic!("a certainly valid event parses as an object");
        };
        let read: serde_json::Map<String, Value> = members
            .iter()
            .map(|(name, text)| {
                (
                    name.to_string(),
                    serde_json::from_str(text).expect("a whole value"),
                )
            })
            .collect();
        assert_eq!((read, members.len()), (fields.clone(), fields.len()));
    } else {
        assert!(members.is_empty());
    }
    fast
}

fn order() -> Value {
    json!({
        "order_id": "o-1", "customer_id": "c-1", "amount": "19.98", "currency": "EUR",
        "created_at": "2025-01-02T10:00:00Z",
        "line_items": [{"sku": "sku-1", "quantity": 2, "unit_price": "9.99"}]
    })
}

/// The event with the value at `pointer` set (a missing last segment is added to its object).
fn with(mut event: Value, pointer: &str, value: Value) -> Vec<u8> {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    match event.pointer_mut(parent).expect("parent") {
        Value::Object(fields) => {
            fields.insert(last.to_owned(), value);
        }
        Value::Array(items) => items[last.parse::<usize>().expect("index")] = value,
        other => panic!("cannot set {pointer} in {other}"),
    }
    serde_json::to_vec(&event).expect("serialize")
}

#[test]
fn the_shipped_contract_has_a_fast_check_that_accepts_valid_orders() {
    let c = orders();
    assert_eq!(c.fast_check_unsupported(), None);
    assert!(sound(&c, &serde_json::to_vec(&order()).expect("json")));
    let spaced = b" {\n \"order_id\" : \"o-2\", \"customer_id\":\"c\", \"amount\":\"0\", \"currency\":\"\\u0055SD\",\n \"created_at\":\"2024-02-29T23:59:59.123+05:30\", \"line_items\":[{\"sku\":\"\xc3\xa9\",\"quantity\":1,\"unit_price\":\"0.5\"}]}\n";
    assert!(sound(&c, spaced));
}

#[test]
fn invalid_or_doubtful_orders_are_left_to_the_full_validator() {
    let c = orders();
    let not_sure = [
        with(order(), "/currency", json!("eur")),
        with(order(), "/amount", json!(19.98)),
        with(order(), "/line_items", json!([])),
        with(order(), "/line_items/0/quantity", json!(0)),
        with(order(), "/line_items/0/extra", json!(1)),
        with(order(), "/created_at", json!("2025-02-29T10:00:00Z")),
        with(order(), "/created_at", json!("2025-01-02 10:00:00Z")),
        with(order(), "/order_id", json!("")),
        with(order(), "/order_id", json!("é".repeat(65))),
        with(order(), "/_offset", json!(1)),
        br#"{"order_id":"o","order_id":"","customer_id":"c","amount":"1","currency":"EUR","created_at":"2025-01-02T10:00:00Z","line_items":[{"sku":"s","quantity":1,"unit_price":"1"}]}"#.to_vec(),
        b"[1]".to_vec(),
        b"{} {}".to_vec(),
        b"not json".to_vec(),
    ];
    for payload in &not_sure {
        assert!(!sound(&c, payload), "{}", String::from_utf8_lossy(payload));
    }
    // Valid to the full validator, but not modelled exactly: integral floats, leap seconds, lower case.
    for doubtful in [
        with(order(), "/line_items/0/quantity", json!(2.0)),
        with(order(), "/created_at", json!("2016-12-31T23:59:60Z")),
        with(order(), "/created_at", json!("2025-01-02t10:00:00z")),
    ] {
        assert!(full_check(&c, &doubtful));
        assert!(!sound(&c, &doubtful));
    }
    // Code points, not bytes: 64 two-byte characters are within maxLength 64.
    assert!(sound(&c, &with(order(), "/order_id", json!("é".repeat(64)))));
}

#[test]
fn values_it_does_not_check_must_still_parse_as_json() {
    // Unchecked values are skipped, but a string the full path cannot parse (bad UTF-8, a lone
    // surrogate) makes the event invalid JSON there: never "valid" here.
    let open = contract(json!({
        "type": "object", "x-streamlake-partition-key": "id", "required": ["id", "must"],
        "properties": {"id": {"type": "string"}, "any": true}
    }));
    assert_eq!(open.fast_check_unsupported(), None);
    assert!(sound(
        &open,
        br#"{"id":"a","must":{"k":"\u00e9"},"extra":"\ud83d\ude00","any":["x"]}"#
    ));
    for payload in [
        &br#"{"id":"a","must":1,"extra":"\ud800"}"#[..],
        b"{\"id\":\"a\",\"must\":1,\"extra\":[\"\xff\"]}",
        br#"{"id":"a","must":1,"any":{"k":"\udc00"}}"#,
        br#"{"id":"a","must":"\ud800"}"#,
    ] {
        assert!(!sound(&open, payload), "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn the_byte_reader_follows_json_grammar_exactly() {
    let c = orders();
    let item = r#"{"sku":"s","quantity":1,"unit_price":"1"}"#;
    let event = |order_id: &str, quantity: &str| {
        format!(
            r#"{{"order_id":{order_id},"customer_id":"c","amount":"1","currency":"EUR","created_at":"2025-01-02T10:00:00Z","line_items":[{item},{{"sku":"t","quantity":{quantity},"unit_price":"2.5"}}]}}"#
        )
    };
    // Valid, and certainly so: escapes in keys and values, whitespace between every token, numbers.
    for (order_id, quantity) in [
        (r#""o\"1""#, "1"),
        (r#""\u006f-\u00e9\ud83d\ude00""#, "9007199254740992"),
        (r#""o""#, "1 \t\r\n"),
    ] {
        assert!(
            sound(&c, event(order_id, quantity).as_bytes()),
            "{order_id} {quantity}"
        );
    }
    let spaced = event(r#""o""#, "2")
        .replace(',', " ,\n")
        .replace("\":", "\"\t: ")
        .replace('[', "[ ");
    assert!(sound(&c, spaced.as_bytes()), "{spaced}");
    // Space only after a colon or a comma (not before), where compact text needs none.
    for spaced in [
        event(r#""o""#, "2").replace("\":", "\": "),
        event(r#""o""#, "2").replace(",\"", ",\n\""),
        event(r#""o""#, "2").replace(",{", ",\t{"),
    ] {
        assert!(sound(&c, spaced.as_bytes()), "{spaced}");
    }
    let escaped_key = event(r#""o""#, "2").replace(r#""quantity""#, r#""q\u0075antity""#);
    assert!(sound(&c, escaped_key.as_bytes()), "{escaped_key}");
    // Invalid JSON, invalid to the contract, or not modelled: never certainly valid.
    let quantities = [
        "01",
        "-0",
        "1.",
        ".5",
        "1e",
        "1e+",
        "-",
        "+1",
        "0x1",
        "1.0",
        "1e0",
        "2E-0",
        "0",
        "-1",
        "NaN",
        "9007199254740993",
        "18446744073709551616",
        "123456789012345678901",
        "tru",
        "true",
        "null",
        "\"1\"",
        "1,",
        "1 1",
        "1-",
        "1+1",
        "--1",
        "-01",
        "1..2",
        "1.2.3",
        "1e5e5",
        "1E",
        "1e+-1",
    ];
    // One or two digits and whatever may follow them: decided exactly (`1.`, `1e`, `1-` and `01` are not
    // JSON).
    let short = (0..100)
        .map(|n| n.to_string())
        .chain(["00", "01", "09"].map(String::from));
    for digits in short {
        for after in [
            "", " ", "\n", "0", "5", ".", ".5", "e", "E", "-", "+", "x", "\"", "]", "}",
        ] {
            let payload = event(r#""o""#, &format!("{digits}{after}"));
            assert_eq!(
                sound(&c, payload.as_bytes()),
                full_check(&c, payload.as_bytes()),
                "{payload}"
            );
        }
    }
    for quantity in quantities {
        assert!(
            !sound(&c, event(r#""o""#, quantity).as_bytes()),
            "quantity {quantity}"
        );
    }
    for order_id in [
        "\"o\u{1}\"",
        "\"o\n\"",
        r#""\x""#,
        r#""\u12""#,
        r#""\ud800""#,
        r#""o"#,
        "1",
        "-0",
        "\"\"",
    ] {
        assert!(!sound(&c, event(order_id, "1").as_bytes()), "order_id {order_id}");
    }
    for broken in [
        event(r#""o""#, "1").replace("}]}", "},]}"),
        event(r#""o""#, "1").replace(r#"]}"#, r#"],}"#),
        event(r#""o""#, "1").replace(r#"{"order_id""#, r#"{ "_k\u0065y":1,"order_id""#),
        event(r#""o""#, "1").replace(r#""sku":"t""#, r#""sku":"t","s\u006bu":"t""#),
        event(r#""o""#, "1") + "\u{a0}",
        event(r#""o""#, "1") + " x",
        format!("\u{feff}{}", event(r#""o""#, "1")),
    ] {
        assert!(!sound(&c, broken.as_bytes()), "{broken}");
    }
}

#[test]
fn keys_match_their_property_whether_written_plainly_or_escaped() {
    let c = contract(json!({
        "type": "object", "x-streamlake-partition-key": "a", "required": ["a"],
        "properties": {"a": {"type": "string"}, "a\"b": {"type": "integer"}, "a\\": {"type": "integer"}, "é": {"type": "integer"}},
        "additionalProperties": false
    }));
    for (payload, certainly) in [
        (r#"{"a":"x","a\"b":1,"a\\":2,"é":3}"#, true),
        (r#"{"\u0061":"x","a\u0022b":1,"\u00e9":3}"#, true),
        (r#"{"a":"x","a\"b":"x"}"#, false),
        (r#"{"a":"x","a\\":"x"}"#, false),
        (r#"{"a":"x","a\\b":1}"#, false),
        (r#"{"a":"x","ab":1}"#, false),
        (r#"{"a":"x","\u0061":"y"}"#, false),
    ] {
        assert_eq!(sound(&c, payload.as_bytes()), certainly, "{payload}");
    }
}

/// Members are compared with the next one of the order last seen (`Keys::lead`) before a key is read:
/// whatever order was learned, and whichever members repeat, end early or are spaced, the answer is the
/// general path's.
#[test]
fn members_are_decided_alike_in_any_order_whatever_order_was_learned() {
    let schema = json!({
        "type": "object", "x-streamlake-partition-key": "id", "required": ["id"],
        "properties": {
            "id": {"type": "string"}, "idx": {"type": "integer"}, "_key": {"type": "string"},
            "a_rather_long_property_name": {"type": "integer", "maximum": 5},
            "items": {"type": "array", "items": {
                "type": "object", "required": ["x"],
                "properties": {"x": {"type": "integer"}, "y": {"type": "string"}},
                "additionalProperties": false
            }}
        },
        "additionalProperties": {"type": "integer"}
    });
    let events = [
        (
            r#"{"id":"a","idx":1,"a_rather_long_property_name":5,"items":[{"x":1,"y":"p"},{"x":2,"y":"q"}]}"#,
            true,
        ),
        (
            r#"{"idx":1,"id":"a","items":[{"y":"p","x":1},{"x":2,"y":"q"},{"y":"r","x":3}],"a_rather_long_property_name":5}"#,
            true,
        ),
        (r#"{"id":"a","idx":1,"id":"b"}"#, false),
        (r#"{"id":"a","idx":1,"idx":2,"z":1}"#, false),
        (r#"{"id":"a","idx":1,"_key":"k","z":1}"#, false),
        (r#"{"id":"a","_key":"k"}"#, false),
        (r#"{"_key":"k","id":"a"}"#, false),
        (r#"{"id":"a","a_rather_long_property_name":6,"items":[]}"#, false),
        (
            r#"{"id":"a","a_rather_long_property_name":4,"items":[{"x":1,"y":"p","z":1}]}"#,
            false,
        ),
        (
            r#"{"id":"a","a_rather_long_property_nam":"4","items":[{"x":1}]}"#,
            false,
        ),
        (
            r#"{"id":"a","a_rather_long_property_namf":4,"items":[{"x":1}]}"#,
            true,
        ),
        (
            r#"{ "id" : "a" , "idx" :1,"z": 2 ,"items":[ { "x" :1 , "y":"p"} ,{"y":"q","x":2}]}"#,
            true,
        ),
        (
            r#"{"id":"a","z":1,"idx":2,"items":[{"x":1,"y":"p"},{"y":"q"}]}"#,
            false,
        ),
        (r#"{"id":"a","idx":"1"}"#, false),
        (r#"{"idx":1}"#, false),
        (r#"{"id":"a","idx":1}"#, true),
        (r#"{"id":"a","idx":1,"items":[{"x":1,"y":"p"}]}  "#, true),
    ];
    // Each event first (the declared order expected: by name), then after each other one (after each
    // order learned), and twice in a row.
    for (event, certainly) in events {
        assert_eq!(
            sound(&contract(schema.clone()), event.as_bytes()),
            certainly,
            "{event} first"
        );
    }
    let c = contract(schema);
    for (before, _) in events {
        for (event, certainly) in events {
            sound(&c, before.as_bytes());
            assert_eq!(sound(&c, event.as_bytes()), certainly, "{event} after {before}");
            assert_eq!(
                sound(&c, event.as_bytes()),
                certainly,
                "{event} twice after {before}"
            );
        }
    }
}

#[test]
fn string_lengths_count_code_points_at_both_bounds() {
    let c = contract(json!({
        "type": "object", "x-streamlake-partition-key": "s", "required": ["s"],
        "properties": {"s": {"type": "string", "minLength": 3, "maxLength": 4}}
    }));
    for (s, certainly) in [
        ("éé", false),
        ("ééé", true),
        ("😀😀😀", true),
        ("ab", false),
        ("abcd", true),
        ("éééé", true),
        ("ééééé", false),
        ("abcdé", false),
    ] {
        let payload = json!({ "s": s }).to_string();
        assert_eq!(sound(&c, payload.as_bytes()), certainly, "{s}");
    }
}

#[test]
fn integers_meet_every_kind_of_bound_exactly_as_the_full_validator_compares_them() {
    let bounds = [
        -1e300,
        -2.5,
        -2.0,
        -1.0,
        0.0,
        0.5,
        1.0,
        1.5,
        2.0,
        12.0,
        12.5,
        13.0,
        9_007_199_254_740_993.0,
        1e300,
    ];
    let integers = [
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-2",
        "-3",
        "10",
        "12",
        "13",
        "99",
        "-12",
        "9007199254740992",
        "-9007199254740992",
    ];
    // Not integers to serde_json, or not JSON: never certainly valid under an integer type.
    let others = [
        "-0",
        "1.0",
        "1e2",
        "01",
        "012",
        "12.",
        "12e1",
        "-",
        "1.",
        "2e",
        "--1",
        "1-",
        "99999999999999999999",
    ];
    for keyword in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        for bound in bounds {
            for kind in ["integer", "number"] {
                let c = contract(json!({
                    "type": "object", "x-streamlake-partition-key": "k", "required": ["k", "n"],
                    "properties": {"k": {"type": "string"}, "n": {"type": kind, keyword: bound}}
                }));
                for n in integers {
                    let payload = format!(r#"{{"k":"a","n":{n}}}"#);
                    // Integers within 2^53 are decided exactly: the fast answer is the full one.
                    assert_eq!(
                        sound(&c, payload.as_bytes()),
                        full_check(&c, payload.as_bytes()),
                        "{kind} {keyword} {bound}: {n}"
                    );
                }
                for n in others {
                    let payload = format!(r#"{{"k":"a","n": {n} }}"#);
                    let fast = sound(&c, payload.as_bytes());
                    assert!(kind == "number" || !fast, "{kind} {keyword} {bound}: {n}");
                }
            }
        }
    }
}

#[test]
fn kept_keys_and_deep_values_agree_with_the_full_path() {
    let open = contract(json!({
        "type": "object", "x-streamlake-partition-key": "id", "required": ["id"],
        "properties": {"id": {"type": ["string", "integer"]}}
    }));
    // Strings as decoded, integers as serde_json prints them; other values key nothing.
    for id in [
        r#""a\nb""#,
        "42",
        "-7",
        "-0",
        "1.5",
        "1e2",
        "true",
        "null",
        "[1]",
        r#"{"k":1}"#,
    ] {
        sound(&open, format!(r#"{{"id":{id}}}"#).as_bytes());
    }
    // Nesting the full path refuses is never certainly valid, and reading it does not overflow the stack.
    for depth in [50, 100, 101, 127, 128, 10_000] {
        let deep = format!(r#"{{"id":"a","x":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let fast = sound(&open, deep.as_bytes());
        assert_eq!(fast, depth <= 100, "depth {depth}");
    }
}

/// A tiny deterministic generator: the differential test needs variety, not cryptography.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SPLICES: [&str; 31] = [
    "\"",
    "0",
    "1",
    "-1",
    "9",
    ".",
    "e5",
    "1.0",
    "null",
    "true",
    "[]",
    "{}",
    ",",
    ":",
    "\\u00e9",
    "é",
    "Z",
    "T",
    "60",
    "+01:00",
    "\"x\":1",
    "\"_key\":1",
    "A",
    " ",
    "\t\n\r",
    "\\",
    "\\\"",
    "-0",
    "00",
    "E+",
    "\u{1}",
];

#[test]
fn mutated_events_never_pass_the_fast_check_when_the_full_validator_rejects_them() {
    let c = orders();
    let rich = contract(json!({
        "type": "object",
        "x-streamlake-partition-key": "id",
        "required": ["id"],
        "properties": {
            "id": {"type": ["string", "integer"], "maxLength": 3},
            "kind": {"enum": ["a", "b"]},
            "score": {"type": "number", "minimum": -1.5, "exclusiveMaximum": 10},
            "count": {"type": "integer", "maximum": 100},
            "flag": {"type": ["boolean", "null"]},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+(-[a-z0-9]+)*$"}, "maxItems": 3},
            "at": {"type": "string", "format": "date-time"}
        },
        "additionalProperties": {"type": "object"}
    }));
    assert_eq!(rich.fast_check_unsupported(), None);
    let seeds: Vec<(&Contract, String)> = vec![
        (&c, order().to_string()),
        (
            &c,
            String::from_utf8(with(order(), "/line_items/0/sku", json!("é-ü"))).expect("UTF-8"),
        ),
        (
            &rich,
            r#"{"id":"ab","kind":"a","score":-1.5,"count":100,"flag":null,"tags":["x","y-1"],"at":"2000-02-29T00:00:00.5-12:00","more":{"k":[1]}}"#.to_owned(),
        ),
        (&rich, r#"{"id":12,"score":9.99,"flag":true}"#.to_owned()),
    ];
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let (mut fast_valid, mut total) = (0, 0);
    for (contract, seed) in &seeds {
        assert!(sound(contract, seed.as_bytes()), "seed must be valid: {seed}");
        for _ in 0..4000 {
            let mut text = seed.clone().into_bytes();
            for _ in 0..=rng.below(3) {
                let at = rng.below(text.len() + 1);
                match rng.below(3) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 if at < text.len() => {
                        let splice = SPLICES[rng.below(SPLICES.len())].as_bytes();
                        text.splice(at..at + 1, splice.iter().copied());
                    }
                    _ => {
                        let splice = SPLICES[rng.below(SPLICES.len())].as_bytes();
                        text.splice(at..at, splice.iter().copied());
                    }
                }
            }
            total += 1;
            if sound(contract, &text) {
                fast_valid += 1;
            }
        }
    }
    // Some mutations keep the event valid (inside a string, whitespace): the fast path is exercised.
    assert!(
        fast_valid > total / 50,
        "only {fast_valid} of {total} mutated events passed the fast check"
    );
}

#[test]
fn contracts_with_keywords_it_does_not_model_get_no_fast_check() {
    for schema in [
        json!({"type": "object", "allOf": [{"required": ["a"]}]}),
        json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {}}}),
        json!({"type": "object", "properties": {"a": {"format": "email"}}}),
        json!({"type": "object", "properties": {"a": {"pattern": "^a.c$"}}}),
        json!({"type": "object", "properties": {"a": {"pattern": "^\\w+$"}}}),
        json!({"type": "object", "properties": {"a": {"pattern": "^[^a]$"}}}),
        json!({"type": "object", "properties": {"a": {"pattern": "^[[:alpha:]]$"}}}),
        json!({"type": "object", "properties": {"a": {"pattern": "\\<a"}}}),
        // Valid in both dialects, but its DFA would outgrow the size limit.
        json!({"type": "object", "properties": {"a": {"pattern": "[ab]*a[ab]{24}"}}}),
        json!({"type": "object", "properties": {"a": {"enum": [1, "a"]}}}),
        json!({"type": "object", "properties": {"a": {"items": [{"type": "string"}]}}}),
        json!({"type": "object", "properties": {"a": {"minimum": 9007199254740993_u64}}}),
        json!({"type": "object", "properties": {"a": false}}),
    ] {
        assert!(FastSchema::compile(&schema).is_err(), "{schema}");
    }
}

#[test]
fn date_times_are_a_strict_subset_of_rfc_3339() {
    for ok in [
        "2025-01-02T10:00:00Z",
        "2024-02-29T00:00:00.000001+14:00",
        "1999-12-31T23:59:59-00:00",
    ] {
        assert!(is_date_time(ok.as_bytes()), "{ok}");
    }
    for no in [
        "2025-01-02T10:00:00",
        "2025-13-02T10:00:00Z",
        "2023-02-29T10:00:00Z",
        "2025-01-02T24:00:00Z",
        "2025-01-02T10:00:00.Z",
        "2025-01-02T10:00:00+1:00",
        "2025-01-02T10:00:00+01:60",
        "2025-01-02T10:00:00Zjunk",
        "2025-1-02T10:00:00Z",
        "",
    ] {
        assert!(!is_date_time(no.as_bytes()), "{no}");
    }
}

/// Valid and invalid byte sequences beyond ASCII (a lone byte, cut sequences, a surrogate, an overlong).
const BEYOND_ASCII: [&[u8]; 8] = [
    "é".as_bytes(),
    "😀".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf0\x9f\x98",
];

/// `event` with each of [`BEYOND_ASCII`] inserted at each of its places, with the sequence inserted.
fn beyond_ascii_inserted(event: &[u8]) -> impl Iterator<Item = (&'static [u8], Vec<u8>)> {
    (0..=event.len()).flat_map(move |at| {
        BEYOND_ASCII.into_iter().map(move |insert| {
            let mut changed = event.to_vec();
            changed.splice(at..at, insert.iter().copied());
            (insert, changed)
        })
    })
}

#[test]
fn bytes_beyond_ascii_are_checked_as_utf8_wherever_they_stand() {
    let c = orders();
    let event = serde_json::to_vec(&order()).expect("json");
    for (insert, changed) in beyond_ascii_inserted(&event) {
        let fast = sound(&c, &changed);
        assert!(!fast || std::str::from_utf8(insert).is_ok(), "{changed:?}");
    }
    // Text beyond ASCII inside strings is certainly valid: 63 code points in 69 bytes (maxLength 64).
    let long = format!("{}{}", "x".repeat(60), "é€😀");
    for pointer in ["/customer_id", "/line_items/0/sku"] {
        assert!(sound(&c, &with(order(), pointer, json!(long))), "{pointer}");
    }
}

#[test]
fn bytes_beyond_ascii_are_checked_across_the_blocks_of_a_bench_sized_event() {
    // An event of about 1 KB, as the bench's, is checked as UTF-8 in blocks of several bytes when its
    // members are read: bytes inserted anywhere, within a block or across two, are decided exactly.
    let c = orders();
    let mut event = order();
    let item =
        |i: usize| json!({"sku": format!("sku-{i:06}-é"), "quantity": i % 19 + 1, "unit_price": "596.07"});
    event["line_items"] = (0..16).map(item).collect();
    let event = serde_json::to_vec(&event).expect("json");
    assert!(event.len() > 1000 && sound(&c, &event));
    for (_, changed) in beyond_ascii_inserted(&event) {
        assert_eq!(
            sound(&c, &changed),
            full_check(&c, &changed),
            "{}",
            String::from_utf8_lossy(&changed)
        );
    }
}

#[test]
fn short_and_patterned_strings_are_decided_as_the_full_validator_decides_them() {
    // Every string here is decided exactly by the fast check: its answer is the full validator's.
    let c = contract(json!({
        "type": "object", "x-streamlake-partition-key": "s", "required": ["s"],
        "properties": {
            "s": {"type": "string", "minLength": 3, "maxLength": 17},
            "p": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})(\\.[0-9]{1,6})?$", "maxLength": 9},
            "q": {"type": "string", "pattern": "^[A-Z]{3}$"}
        },
        "additionalProperties": false
    }));
    let decided = |payload: String| {
        assert_eq!(
            sound(&c, payload.as_bytes()),
            full_check(&c, payload.as_bytes()),
            "{payload}"
        );
    };
    // Lengths on both sides of the bounds and of the sixteen bytes looked at at once, plain and not.
    for len in 0..40 {
        for (filler, tail) in [("x", ""), ("x", "é"), ("x", "\\u0041"), ("x", "\\\""), ("é", "")] {
            let s = format!("{}{tail}", filler.repeat(len));
            decided(format!(r#"{{"s":"{s}"}}"#));
            decided(format!(r#"{{"p":"1","s":"{s}"}}"#));
            decided(format!(r#"{{"s":"abc","p":"{s}"}}"#));
        }
    }
    // `p` or `q` beside a valid `s`.
    let with_member = |name: &str, value: &str| format!(r#"{{"s":"abc","{name}":"{value}"}}"#);
    let decimals: [&[&str]; 5] = [
        &["0", "00", "01", "1.5", "1.", ".5", "9.99", "0.01"],
        // Lengths around maxLength 9, then decimals around the six allowed.
        &["1234.5678", "12345.678", "123456789", "1234567890"],
        &["0.123456", "0.1234567"],
        // Escapes, which the pattern sees decoded.
        &["\\u0031", "1\\u002e5", "1\\\\", "1\\\""],
        &["é", "1é", "", "1 "],
    ];
    for p in decimals.concat() {
        decided(with_member("p", p));
    }
    let codes: [&[&str]; 2] = [
        &["EUR", "EU", "EURO", "eur"],
        &["E\\u0055R", "EU\\\"", "ÉUR", "", "E\\nR"],
    ];
    for q in codes.concat() {
        decided(with_member("q", q));
        // At the event's very end too (fewer than sixteen bytes after the quote).
        decided(with_member("q", q).replace("}", "\n}"));
    }
}

#[test]
fn a_strings_length_decides_it_only_when_no_other_check_applies() {
    let c = contract(json!({
        "type": "object", "x-streamlake-partition-key": "k", "required": ["k"],
        "properties": {
            "k": {"type": "string"},
            "e": {"enum": ["ab", "cd"], "maxLength": 5},
            "d": {"type": "string", "format": "date-time", "maxLength": 30},
            "n": {"type": "integer", "minLength": 1},
            "s": {"type": ["string", "integer"], "minLength": 2, "maxLength": 2}
        }
    }));
    for (member, certainly) in [
        (r#""e":"ab""#, true),
        (r#""e":"ac""#, false),
        (r#""e":"""#, false),
        (r#""e":1"#, false),
        (r#""d":"2025-01-02T10:00:00Z""#, true),
        (r#""d":"2025-01-02T10:00:00""#, false),
        (r#""d":"x""#, false),
        (r#""n":"ab""#, false),
        (r#""n":3"#, true),
        (r#""s":"ab""#, true),
        (r#""s":"a""#, false),
        (r#""s":"abc""#, false),
        (r#""s":7"#, true),
        (r#""k":7"#, false),
    ] {
        let payload = format!(r#"{{"k":"x",{member}}}"#);
        assert_eq!(sound(&c, payload.as_bytes()), certainly, "{payload}");
    }
}
