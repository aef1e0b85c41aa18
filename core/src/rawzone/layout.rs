//! Where raw-zone objects live and what they are called.
//!
//! `raw/dataset=<name>/ingestion_date=YYYY-MM-DD/` holds the data files of one UTC day and its
//! `_metadata.json`. The day comes from the Kafka record timestamp, so a re-read lands in the same place.
//! A data file is named after its Kafka partition, its first and last offset, and a digest of its bytes
//! (their CRC32C, as listed in the metadata):
//! `p00003-o00000000000000001000-o00000000000000001099-3fa9c2e1.jsonl.gz`.
//! Equal bytes therefore get equal names, and a rewrite of the same records is a rewrite of the same
//! object; two different files for the same offsets share a name only by a 1-in-2^32 accident.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::names::DatasetName;

/// Top-level folder of the raw zone inside a store.
pub const RAW_ROOT: &str = "raw";
/// Name of the index object of a date partition.
pub const METADATA_FILE: &str = "_metadata.json";
/// Hex characters of the content digest in a data file name: the whole CRC32C of its bytes.
pub const NAME_DIGEST_LEN: usize = 8;
/// The same in names of earlier writers: the first twelve hex characters of the SHA-256.
const SHA256_NAME_DIGEST_LEN: usize = 12;
/// Zero-padded widths so that names sort like the numbers they carry.
const PARTITION_WIDTH: usize = 5;
const OFFSET_WIDTH: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("Kafka record timestamp {0} ms is outside the representable date range")]
    TimestampOutOfRange(i64),
    #[error("{0:?} is not an ingestion date (expected YYYY-MM-DD)")]
    BadDate(String),
    #[error("{name:?} is not a raw-zone data file name: {reason}")]
    BadFileName { name: String, reason: &'static str },
    #[error("unknown file format {0:?} (expected jsonl, jsonl.gz, jsonl.zst or parquet)")]
    UnknownFormat(String),
}

/// The UTC day of a Kafka record timestamp: the `ingestion_date=` partition of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IngestionDate(NaiveDate);

impl IngestionDate {
    pub fn new(date: NaiveDate) -> Self {
        Self(date)
    }

    pub fn from_timestamp_millis(millis: i64) -> Result<Self, LayoutError> {
        DateTime::from_timestamp_millis(millis)
            .map(|t| Self(t.date_naive()))
            .ok_or(LayoutError::TimestampOutOfRange(millis))
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }
}

impl fmt::Display for IngestionDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl FromStr for IngestionDate {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Strict width: `2025-1-2` would parse but name a different folder than the one we write.
        if s.len() != 10 {
            return Err(LayoutError::BadDate(s.to_owned()));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Self)
            .map_err(|_| LayoutError::BadDate(s.to_owned()))
    }
}

impl TryFrom<String> for IngestionDate {
    type Error = LayoutError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<IngestionDate> for String {
    fn from(value: IngestionDate) -> Self {
        value.to_string()
    }
}

/// How a data file is encoded; the name's extension says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Jsonl,
    JsonlGzip,
    JsonlZstd,
    Parquet,
}

impl FileFormat {
    pub const ALL: [FileFormat; 4] = [Self::Jsonl, Self::JsonlGzip, Self::JsonlZstd, Self::Parquet];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::JsonlGzip => "jsonl.gz",
            Self::JsonlZstd => "jsonl.zst",
            Self::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl => "application/x-ndjson",
            Self::JsonlGzip => "application/gzip",
            Self::JsonlZstd => "application/zstd",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for FileFormat {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.extension() == s)
            .ok_or_else(|| LayoutError::UnknownFormat(s.into()))
    }
}

/// The parsed name of a data file: its lineage (partition and offsets), digest and format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataFileName {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The hex digits of the file's checksum (see [`DataFileName::new`]).
    pub digest: String,
    pub format: FileFormat,
}

impl DataFileName {
    /// Names a file from its lineage and its checksum as listed (`crc32c:<8 hex>`, see
    /// [`super::file_checksum`]): the name keeps the first [`NAME_DIGEST_LEN`] hex digits.
    pub fn new(
        partition: i32,
        first_offset: i64,
        last_offset: i64,
        checksum: &str,
        format: FileFormat,
    ) -> Self {
        let hex = checksum.split_once(':').map_or(checksum, |(_, hex)| hex);
        let digest = hex.chars().take(NAME_DIGEST_LEN).collect();
        Self {
            partition,
            first_offset,
            last_offset,
            digest,
            format,
        }
    }
}

impl fmt::Display for DataFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{:0pw$}-o{:0ow$}-o{:0ow$}-{}.{}",
            self.partition,
            self.first_offset,
            self.last_offset,
            self.digest,
            self.format.extension(),
            pw = PARTITION_WIDTH,
            ow = OFFSET_WIDTH,
        )
    }
}

impl FromStr for DataFileName {
    type Err = LayoutError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let bad = |reason| LayoutError::BadFileName {
            name: name.to_owned(),
            reason,
        };
        let (stem, extension) = name.split_once('.').ok_or_else(|| bad("no extension"))?;
        let format = extension.parse().map_err(|_| bad("unknown extension"))?;
        let mut parts = stem.split('-');
        let mut field = |prefix: &'static str| -> Result<&str, LayoutError> {
            let part = parts.next().ok_or_else(|| bad("too few fields"))?;
            part.strip_prefix(prefix)
                .ok_or_else(|| bad("field without its p/o prefix"))
        };
        let partition = field("p")?
            .parse()
            .map_err(|_| bad("partition is not a number"))?;
        let first_offset: i64 = field("o")?
            .parse()
            .map_err(|_| bad("first offset is not a number"))?;
        let last_offset: i64 = field("o")?
            .parse()
            .map_err(|_| bad("last offset is not a number"))?;
        let digest = field("")?.to_owned();
        if parts.next().is_some() {
            return Err(bad("too many fields"));
        }
        let digest_len_ok = digest.len() == NAME_DIGEST_LEN || digest.len() == SHA256_NAME_DIGEST_LEN;
        if !digest_len_ok || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "digest is not 8 (or, from earlier writers, 12) hex characters",
            ));
        }
        if first_offset < 0 || last_offset < first_offset {
            return Err(bad("offset range is empty or negative"));
        }
        Ok(Self {
            partition,
            first_offset,
            last_offset,
            digest,
            format,
        })
    }
}

/// Keys (paths relative to the store root) of a dataset's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawZoneLayout {
    dataset: DatasetName,
}

impl RawZoneLayout {
    pub fn new(dataset: DatasetName) -> Self {
        Self { dataset }
    }

    pub fn dataset(&self) -> &DatasetName {
        &self.dataset
    }

    /// `raw/dataset=<name>`
    pub fn dataset_prefix(&self) -> String {
        format!("{RAW_ROOT}/dataset={}", self.dataset)
    }

    /// `raw/dataset=<name>/ingestion_date=YYYY-MM-DD`
    pub fn date_prefix(&self, date: IngestionDate) -> String {
        format!("{}/ingestion_date={date}", self.dataset_prefix())
    }

    pub fn metadata_key(&self, date: IngestionDate) -> String {
        format!("{}/{METADATA_FILE}", self.date_prefix(date))
    }

    pub fn data_file_key(&self, date: IngestionDate, file: &str) -> String {
        format!("{}/{file}", self.date_prefix(date))
    }
}

/// Readers skip names starting with `_` or `.`: the metadata file, lock files and temporary files.
pub fn is_data_file(name: &str) -> bool {
    !(name.starts_with('_') || name.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> RawZoneLayout {
        RawZoneLayout::new(DatasetName::new("orders").expect("valid"))
    }

    #[test]
    fn date_comes_from_the_utc_day_of_the_record_timestamp() {
        // 2025-01-02T23:59:59.999Z and one millisecond later.
        let before = IngestionDate::from_timestamp_millis(1_735_862_399_999).expect("in range");
        let after = IngestionDate::from_timestamp_millis(1_735_862_400_000).expect("in range");
        assert_eq!(before.to_string(), "2025-01-02");
        assert_eq!(after.to_string(), "2025-01-03");
        assert_eq!(
            IngestionDate::from_timestamp_millis(0)
                .expect("epoch")
                .to_string(),
            "1970-01-01"
        );
    }

    #[test]
    fn keys_follow_the_hive_style_layout() {
        let date: IngestionDate = "2025-01-02".parse().expect("date");
        assert_eq!(
            layout().date_prefix(date),
            "raw/dataset=orders/ingestion_date=2025-01-02"
        );
        assert_eq!(
            layout().metadata_key(date),
            "raw/dataset=orders/ingestion_date=2025-01-02/_metadata.json"
        );
        assert_eq!(
            layout().data_file_key(date, "p00000-x.jsonl"),
            "raw/dataset=orders/ingestion_date=2025-01-02/p00000-x.jsonl"
        );
    }

    #[test]
    fn dates_parse_strictly() {
        for bad in ["2025-1-02", "2025-01-32", "yesterday", "2025-01-02T00:00:00Z", ""] {
            assert!(bad.parse::<IngestionDate>().is_err(), "{bad} should be rejected");
        }
        let json =
            serde_json::to_string(&"2025-01-02".parse::<IngestionDate>().expect("date")).expect("json");
        assert_eq!(json, "\"2025-01-02\"");
    }

    #[test]
    fn file_names_carry_lineage_and_sort_by_offset() {
        let digest = "crc32c:3fa9c2e1";
        let name = DataFileName::new(3, 1000, 1099, digest, FileFormat::JsonlGzip);
        let text = name.to_string();
        assert_eq!(
            text,
            "p00003-o00000000000000001000-o00000000000000001099-3fa9c2e1.jsonl.gz"
        );
        assert_eq!(text.parse::<DataFileName>().expect("round trip"), name);

        let earlier = DataFileName::new(3, 999, 999, digest, FileFormat::Parquet).to_string();
        let later = DataFileName::new(3, 10_000, 10_000, digest, FileFormat::Parquet).to_string();
        assert!(
            earlier < text && text < later,
            "lexicographic order must follow offsets"
        );
    }

    #[test]
    fn every_format_round_trips_through_its_name() {
        for format in FileFormat::ALL {
            let name = DataFileName::new(0, 0, 5, "crc32c:0123abcd", format);
            assert_eq!(name.to_string().parse::<DataFileName>().expect("parse"), name);
        }
    }

    #[test]
    fn names_of_earlier_writers_with_a_sha256_prefix_still_parse() {
        let name: DataFileName = "p00003-o00000000000000001000-o00000000000000001099-3fa9c2e1d0b4.jsonl"
            .parse()
            .expect("a name with twelve hex digits");
        assert_eq!((name.first_offset, name.digest.as_str()), (1000, "3fa9c2e1d0b4"));
        let sha = DataFileName::new(3, 1, 2, "sha256:3fa9c2e1d0b4aa55", FileFormat::Jsonl);
        assert_eq!(
            sha.digest, "3fa9c2e1",
            "new names keep eight digits whatever the algorithm"
        );
    }

    #[test]
    fn malformed_file_names_are_rejected_with_a_reason() {
        for bad in [
            "_metadata.json",
            "p00003-o1-o2-3fa9c2e1d0b4",
            "p00003-o1-o2-3fa9c2e1d0b4.csv",
            "p00003-o2-o1-3fa9c2e1d0b4.jsonl",
            "p00003-o1-o2-xyz.jsonl",
            "p00003-o1-o2-3fa9c2e1d0.jsonl",
            "p00003-o1-o2-3fa9c2e.jsonl",
            "p00003-o1-o2-3fa9c2e1d0b4-extra.jsonl",
            "x00003-o1-o2-3fa9c2e1d0b4.jsonl",
        ] {
            assert!(bad.parse::<DataFileName>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn hidden_and_underscore_names_are_not_data() {
        assert!(!is_data_file(METADATA_FILE));
        assert!(!is_data_file("._metadata.json.lock"));
        assert!(!is_data_file(".p00000.tmp-1"));
        assert!(is_data_file(
            "p00000-o00000000000000000000-o00000000000000000001-0123abcd.jsonl"
        ));
    }
}
