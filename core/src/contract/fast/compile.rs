//! Compiling a contract's schema into the checks the streaming reader applies; any keyword, pattern or
//! value it cannot model exactly makes the whole contract [`Unsupported`].

use serde_json::Value;

use super::keys::Keys;
use super::pattern::Pattern;

use super::{
    ANNOTATIONS, ARRAY, Additional, BOOLEAN, Checks, EXACT_F64_INTEGER, INTEGER, MAX_PROPERTIES, NULL,
    NUMBER, Node, OBJECT, STRING, Unsupported, unsupported,
};

pub(super) fn compile(schema: &Value) -> Result<Node, Unsupported> {
    let object = match schema {
        Value::Bool(true) => return Ok(Node::Any),
        Value::Object(object) => object,
        other => return unsupported(format!("schema {other}")),
    };
    let mut checks = Checks::ANY;
    let mut required: Vec<&str> = Vec::new();
    for (keyword, value) in object {
        match keyword.as_str() {
            "type" => checks.types = types(value)?,
            "enum" => checks.enum_strings = Some(string_enum(value)?),
            "minLength" => checks.min_length = Some(count(keyword, value)?),
            "maxLength" => checks.max_length = Some(count(keyword, value)?),
            "pattern" => checks.pattern = Some(pattern(value)?),
            "format" if value.as_str() == Some("date-time") => checks.date_time = true,
            "minimum" => checks.minimum = Some(bound(keyword, value)?),
            "maximum" => checks.maximum = Some(bound(keyword, value)?),
            "exclusiveMinimum" => checks.exclusive_minimum = Some(bound(keyword, value)?),
            "exclusiveMaximum" => checks.exclusive_maximum = Some(bound(keyword, value)?),
            "minItems" => checks.min_items = Some(count(keyword, value)?),
            "maxItems" => checks.max_items = Some(count(keyword, value)?),
            "items" if !value.is_array() => checks.items = compile(value)?,
            "properties" => {
                let Value::Object(properties) = value else {
                    return unsupported("properties that are not an object");
                };
                for (name, schema) in properties {
                    checks.properties.push((name.clone(), compile(schema)?));
                }
            }
            "required" => {
                let names = value.as_array().map(|names| names.iter().map(Value::as_str));
                required = match names.map(Iterator::collect::<Option<Vec<&str>>>) {
                    Some(Some(names)) => names,
                    _ => return unsupported("required that is not a list of names"),
                };
            }
            "additionalProperties" => {
                checks.additional = match value {
                    Value::Bool(false) => Additional::Forbidden,
                    Value::Bool(true) => Additional::Any,
                    schema => Additional::Schema(compile(schema)?),
                }
            }
            k if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
            k => return unsupported(format!("keyword {k} = {value}")),
        }
    }
    for name in required {
        let index = match checks.properties.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                // Required but undeclared: any value, but it must be there (and is not "additional").
                if !matches!(checks.additional, Additional::Any) {
                    return unsupported(format!("required property {name} is not declared"));
                }
                checks.properties.push((name.to_owned(), Node::Any));
                checks.properties.len() - 1
            }
        };
        if index >= MAX_PROPERTIES {
            return unsupported("too many properties");
        }
        checks.required |= 1 << index;
    }
    if checks.properties.len() > MAX_PROPERTIES {
        return unsupported("too many properties");
    }
    checks.integers = checks.integer_range();
    checks.ascii_lengths = checks.ascii_lengths();
    checks.keys = Keys::new(checks.properties.iter().map(|(name, _)| name.as_str()));
    Ok(Node::Checked(Box::new(checks)))
}

fn types(value: &Value) -> Result<u8, Unsupported> {
    let one = |name: &str| -> Result<u8, Unsupported> {
        Ok(match name {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => NUMBER | INTEGER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            other => return unsupported(format!("type {other}")),
        })
    };
    match value {
        Value::String(name) => one(name),
        Value::Array(names) => names.iter().try_fold(0, |acc, name| match name {
            Value::String(name) => Ok(acc | one(name)?),
            other => unsupported(format!("type {other}")),
        }),
        other => unsupported(format!("type {other}")),
    }
}

fn string_enum(value: &Value) -> Result<Vec<String>, Unsupported> {
    let strings = value
        .as_array()
        .map(|values| values.iter().map(|v| v.as_str().map(str::to_owned)).collect());
    match strings {
        Some(Some(strings)) => Ok(strings),
        _ => unsupported("an enum of other values than strings"),
    }
}

fn count(keyword: &str, value: &Value) -> Result<usize, Unsupported> {
    match value.as_u64().map(usize::try_from) {
        Some(Ok(n)) => Ok(n),
        _ => unsupported(format!("{keyword} = {value}")),
    }
}

/// A numeric bound, only if it is exactly an `f64`.
fn bound(keyword: &str, value: &Value) -> Result<f64, Unsupported> {
    let exact = match value {
        Value::Number(n) if n.is_f64() => n.as_f64(),
        Value::Number(n) => n
            .as_i64()
            .filter(|i| i.unsigned_abs() <= EXACT_F64_INTEGER)
            .map(|i| i as f64),
        _ => None,
    };
    exact.map_or_else(|| unsupported(format!("{keyword} = {value}")), Ok)
}

fn pattern(value: &Value) -> Result<Pattern, Unsupported> {
    match value.as_str() {
        Some(pattern) => Pattern::compile(pattern),
        None => unsupported("a pattern that is not a string"),
    }
}
