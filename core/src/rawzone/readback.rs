//! Reading landed data files back as JSON rows, in every format the consumer writes: for the operator's
//! checks, tests and people debugging the raw zone.

use std::collections::BTreeSet;
use std::io::Read;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use super::FileFormat;
use super::columns::{ColumnKind, KIND_METADATA_KEY, format_timestamp};

#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    #[error("decompressing: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} is not a JSON object: {source}")]
    Json { line: usize, source: serde_json::Error },
    #[error("reading Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("reading Arrow batches: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("column {0} has a type this reader does not know")]
    UnknownColumn(String),
}

/// A data file read back.
#[derive(Debug)]
pub struct ReadBack {
    /// Every row as a JSON object (Parquet rows look like JSON lines rows).
    pub rows: Vec<Map<String, Value>>,
    /// The columns of a Parquet file that hold JSON text, as the file says (its contract columns'
    /// [`KIND_METADATA_KEY`]); `None` for JSON lines and for a Parquet file that does not say (written
    /// before it did), whose reader must take them from the contract the writer had — the dataset's newest.
    pub json_text_columns: Option<BTreeSet<String>>,
}

/// Reads a data file of any format the consumer writes (a Parquet footer is parsed once).
pub fn read_back(format: FileFormat, data: Bytes) -> Result<ReadBack, ReadbackError> {
    let rows = match format {
        FileFormat::Parquet => return read_parquet(data),
        FileFormat::Jsonl => parse_lines(&data)?,
        FileFormat::JsonlGzip => parse_lines(&decompress(flate2::read::GzDecoder::new(&data[..]))?)?,
        FileFormat::JsonlZstd => parse_lines(&decompress(zstd::Decoder::new(&data[..])?)?)?,
    };
    Ok(ReadBack {
        rows,
        json_text_columns: None,
    })
}

/// Every row of a data file as a JSON object.
pub fn read_rows(format: FileFormat, data: Bytes) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    Ok(read_back(format, data)?.rows)
}

/// The (partition, offset) of every row.
pub fn row_positions(rows: &[Map<String, Value>]) -> Vec<(i64, i64)> {
    rows.iter()
        .map(|r| {
            let field = |name: &str| r.get(name).and_then(Value::as_i64).unwrap_or(-1);
            (field("_partition"), field("_offset"))
        })
        .collect()
}

fn decompress(mut reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

fn parse_lines(data: &[u8]) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    data.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|source| ReadbackError::Json { line: i + 1, source })
        })
        .collect()
}

fn read_parquet(data: Bytes) -> Result<ReadBack, ReadbackError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)?;
    let json_text_columns = described_json_columns(builder.schema().fields());
    let mut rows = Vec::new();
    for batch in builder.build()? {
        rows.extend(batch_rows(&batch?)?);
    }
    Ok(ReadBack {
        rows,
        json_text_columns,
    })
}

/// The fields whose [`KIND_METADATA_KEY`] says they hold JSON text; `None` if no field has one.
fn described_json_columns(fields: &arrow_schema::Fields) -> Option<BTreeSet<String>> {
    let mut described = false;
    let mut json = BTreeSet::new();
    for field in fields {
        if let Some(kind) = field.metadata().get(KIND_METADATA_KEY) {
            described = true;
            if kind == ColumnKind::Json.name() {
                json.insert(field.name().clone());
            }
        }
    }
    described.then_some(json)
}

fn batch_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, ReadbackError> {
    let mut rows = vec![Map::new(); batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        for (i, row) in rows.iter_mut().enumerate() {
            let value = if column.is_null(i) {
                Value::Null
            } else {
                match field.data_type() {
                    DataType::Int32 => Value::from(column.as_primitive::<Int32Type>().value(i)),
                    DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(i)),
                    DataType::Float64 => {
                        Value::from(column.as_primitive::<arrow_array::types::Float64Type>().value(i))
                    }
                    DataType::Boolean => Value::from(column.as_boolean().value(i)),
                    DataType::Utf8 => Value::from(column.as_string::<i32>().value(i)),
                    DataType::Timestamp(_, _) => Value::from(format_timestamp(
                        column.as_primitive::<TimestampMillisecondType>().value(i),
                    )),
                    _ => return Err(ReadbackError::UnknownColumn(field.name().clone())),
                }
            };
            row.insert(field.name().clone(), value);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn parquet_file(fields: Vec<Field>) -> Bytes {
        let columns: Vec<ArrayRef> = fields
            .iter()
            .map(|_| Arc::new(StringArray::from(vec![r#"["x"]"#])) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        Bytes::from(out)
    }

    #[test]
    fn a_file_names_its_json_text_columns_or_says_nothing() {
        let kind = |name: &str, kind: ColumnKind| {
            Field::new(name, DataType::Utf8, true).with_metadata([(KIND_METADATA_KEY, kind.name())])
        };
        let described = parquet_file(vec![
            kind("tags", ColumnKind::Json),
            kind("sku", ColumnKind::Utf8),
        ]);
        let read = read_back(FileFormat::Parquet, described).expect("readable");
        assert_eq!(read.json_text_columns, Some(BTreeSet::from(["tags".to_owned()])));
        assert_eq!(read.rows[0]["tags"], r#"["x"]"#);
        // Written before files said which columns hold JSON text: the reader must decide.
        let silent = parquet_file(vec![Field::new("tags", DataType::Utf8, true)]);
        let read = read_back(FileFormat::Parquet, silent).expect("readable");
        assert_eq!((read.json_text_columns, read.rows.len()), (None, 1));
    }
}
