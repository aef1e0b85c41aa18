//! Turns a landed row back into the event its contract describes, for every format the consumer writes.
//!
//! JSON lines rows are the event plus the sink's `_` columns. Parquet rows hold one column per contract
//! property (non-scalar values as JSON text, values that did not fit the column in `_extra`), so the
//! event is rebuilt from those columns: the consumer keeps no copy of the original JSON.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use streamlake_core::contract::Contract;
use streamlake_core::rawzone::FileFormat;
use streamlake_core::rawzone::columns::{ColumnKind, EXTRA_COLUMN, ParquetColumns};

/// The columns that hold JSON text in a Parquet file written with `newest`'s columns: for files that do
/// not say so themselves ([`streamlake_core::rawzone::readback::ReadBack::json_text_columns`]; written
/// before they did). The consumer makes a file's columns from its newest contract — not from a row's own
/// version: a property may be a string in an old version and an array in the newest.
pub fn json_text_columns_of(newest: &Contract) -> BTreeSet<String> {
    ParquetColumns::from_contract(newest)
        .map(|c| c.columns)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, kind)| *kind == ColumnKind::Json)
        .map(|(name, _)| name)
        .collect()
}

/// The event a row of a file in `format` was landed from, as `contract` (the row's version) sees it; an
/// error when the row cannot be turned back into one. `json_text`: the file's JSON-text columns (ignored
/// for JSON lines).
pub fn event_of_row(
    format: FileFormat,
    mut row: Map<String, Value>,
    contract: &Contract,
    json_text: &BTreeSet<String>,
) -> Result<Value, String> {
    if format == FileFormat::Parquet {
        row = rebuild_parquet(row, contract, json_text)?;
    }
    row.retain(|k, _| !k.starts_with('_'));
    Ok(Value::Object(row))
}

fn rebuild_parquet(
    mut row: Map<String, Value>,
    contract: &Contract,
    json_text_columns: &BTreeSet<String>,
) -> Result<Map<String, Value>, String> {
    let properties = contract.schema().get("properties").and_then(Value::as_object);
    let mut event = Map::new();
    for (name, schema) in properties.into_iter().flatten() {
        let json_text = json_text_columns.contains(name);
        match row.remove(name) {
            // A null column is an absent field or a JSON null: only the schema tells which it was.
            None | Some(Value::Null) if allows_null(schema) => {
                event.insert(name.clone(), Value::Null);
            }
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if json_text => {
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                event.insert(name.clone(), value);
            }
            Some(value) => {
                event.insert(name.clone(), value);
            }
        }
    }
    if let Some(Value::String(extra)) = row.get(EXTRA_COLUMN) {
        let fields = serde_json::from_str::<Map<String, Value>>(extra)
            .map_err(|e| format!("column {EXTRA_COLUMN} is not a JSON object: {e}"))?;
        event.extend(fields);
    }
    Ok(event)
}

/// Whether a property's schema accepts `null`: no `type` at all, or `null` among its types.
fn allows_null(schema: &Value) -> bool {
    match schema.get("type") {
        None => true,
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests;
