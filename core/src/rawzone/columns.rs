//! The columns of the raw zone's data files: what the consumer writes and every reader of the files reads.
//!
//! Every row carries the sink's columns ([`SINK_COLUMNS`]): the record's Kafka partition, offset,
//! timestamp, key, the `event_id` header and the contract version it was checked against. A JSON lines
//! row is the event with those fields added; a Parquet file has one column per top-level property of the
//! dataset's newest contract ([`ParquetColumns`]): JSON Schema `string`, `integer`, `number` and
//! `boolean` become Utf8, Int64, Float64 and Boolean; anything else (objects, arrays, unions) is kept as
//! JSON text. A value that does not fit its column (a field of an older contract version, an extra
//! property) goes to [`EXTRA_COLUMN`], a JSON object, so nothing a record carried is lost.

#[cfg(feature = "files")]
use std::sync::Arc;

#[cfg(feature = "files")]
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use serde_json::Value;

#[cfg(feature = "files")]
use crate::contract::Contract;

/// The columns the sink adds to every row; an event may not carry fields with these names.
pub const SINK_COLUMNS: [&str; 6] = [
    "_partition",
    "_offset",
    "_timestamp",
    "_key",
    "_event_id",
    "_schema_version",
];

/// The Parquet column holding, as a JSON object, the fields that had no column of their type.
pub const EXTRA_COLUMN: &str = "_extra";

/// The Arrow field metadata key naming a contract column's [`ColumnKind`] in the files (`json` for the
/// columns that hold JSON text), so a reader need not know which contract the writer had: a property may
/// be a string in one version and an array in the next.
pub const KIND_METADATA_KEY: &str = "streamlake.kind";

/// A contract property named like a column of the sink.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("property {0} collides with a column of the sink")]
pub struct ColumnsError(pub String);

/// RFC 3339 with milliseconds in UTC: `_timestamp` as JSON lines write it and readers show it.
pub fn format_timestamp(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The Arrow type a contract property maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Utf8,
    Int64,
    Float64,
    Boolean,
    /// Any other JSON value, stored as its JSON text.
    Json,
}

impl ColumnKind {
    /// The kind of column a contract property with this JSON Schema gets.
    pub fn of_property(schema: &Value) -> Self {
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => vec![],
        };
        match types.as_slice() {
            ["string"] => Self::Utf8,
            ["integer"] => Self::Int64,
            ["number"] => Self::Float64,
            ["boolean"] => Self::Boolean,
            _ => Self::Json,
        }
    }

    /// Its name in [`KIND_METADATA_KEY`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf8",
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Boolean => "boolean",
            Self::Json => "json",
        }
    }

    #[cfg(feature = "files")]
    pub fn data_type(self) -> DataType {
        match self {
            Self::Utf8 | Self::Json => DataType::Utf8,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Boolean => DataType::Boolean,
        }
    }
}

/// The contract's columns and the resulting Arrow schema.
#[cfg(feature = "files")]
#[derive(Debug, Clone)]
pub struct ParquetColumns {
    pub columns: Vec<(String, ColumnKind)>,
    schema: SchemaRef,
}

#[cfg(feature = "files")]
impl ParquetColumns {
    /// Fails if a property is named like one of the sink's columns.
    pub fn from_contract(contract: &Contract) -> Result<Self, ColumnsError> {
        let properties = contract.schema().get("properties").and_then(Value::as_object);
        let mut columns = Vec::new();
        for (name, schema) in properties.into_iter().flatten() {
            if SINK_COLUMNS.contains(&name.as_str()) || name == EXTRA_COLUMN {
                return Err(ColumnsError(name.clone()));
            }
            columns.push((name.clone(), ColumnKind::of_property(schema)));
        }
        let utc = Some(Arc::<str>::from("UTC"));
        let mut fields = vec![
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
            Field::new(
                "_timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, utc),
                false,
            ),
            Field::new("_key", DataType::Utf8, true),
            Field::new("_event_id", DataType::Utf8, true),
            Field::new("_schema_version", DataType::Int32, false),
        ];
        fields.extend(columns.iter().map(|(name, kind)| {
            Field::new(name, kind.data_type(), true).with_metadata([(KIND_METADATA_KEY, kind.name())])
        }));
        fields.push(Field::new(EXTRA_COLUMN, DataType::Utf8, true));
        Ok(Self {
            columns,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(all(test, feature = "files"))]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::names::DatasetName;

    fn contract(properties: Value) -> Contract {
        let schema = json!({
            "x-streamlake-partition-key": "id",
            "type": "object",
            "required": ["id"],
            "properties": properties,
        });
        Contract::from_schema(DatasetName::new("cols").expect("valid"), 1, schema).expect("contract")
    }

    #[test]
    fn properties_become_typed_columns_after_the_sink_columns_and_before_extra() {
        let columns = ParquetColumns::from_contract(&contract(json!({
            "id": { "type": "string" },
            "qty": { "type": "integer" },
            "price": { "type": ["number", "null"] },
            "paid": { "type": "boolean" },
            "items": { "type": "array" },
            "either": { "type": ["string", "integer"] },
        })))
        .expect("columns");
        let kinds: Vec<(&str, ColumnKind)> = columns.columns.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        assert_eq!(
            kinds,
            [
                ("either", ColumnKind::Json),
                ("id", ColumnKind::Utf8),
                ("items", ColumnKind::Json),
                ("paid", ColumnKind::Boolean),
                ("price", ColumnKind::Float64),
                ("qty", ColumnKind::Int64),
            ]
        );
        let schema = columns.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(&names[..SINK_COLUMNS.len()], SINK_COLUMNS);
        assert_eq!(names.last(), Some(&EXTRA_COLUMN));
        assert_eq!(names.len(), SINK_COLUMNS.len() + kinds.len() + 1);
    }

    #[test]
    fn a_property_named_like_a_sink_column_is_refused() {
        for name in ["_offset", EXTRA_COLUMN] {
            let refused =
                ParquetColumns::from_contract(&contract(json!({ "id": { "type": "string" }, name: {} })));
            assert_eq!(refused.map(|_| ()), Err(ColumnsError(name.to_owned())));
        }
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_milliseconds() {
        assert_eq!(format_timestamp(1_735_862_400_123), "2025-01-03T00:00:00.123Z");
    }
}
