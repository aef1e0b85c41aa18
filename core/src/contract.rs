//! Dataset contracts: one JSON Schema per dataset and version, loaded from `contracts/<dataset>.v<N>.json`.
//!
//! A contract names its partition key with the custom keyword [`PARTITION_KEY_KEYWORD`]: a required
//! top-level property of type string or integer whose value becomes the Kafka record key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::names::{DatasetName, InvalidDatasetName};

pub mod fast;

/// The schema keyword naming the field whose value is the record key.
pub const PARTITION_KEY_KEYWORD: &str = "x-streamlake-partition-key";

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("reading contracts from {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("contract file {path} is not JSON: {source}")]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("contract file {path} must be named <dataset>.v<version>.json, e.g. orders.v1.json")]
    FileName { path: PathBuf },
    #[error(transparent)]
    Dataset(#[from] InvalidDatasetName),
    #[error("contract {dataset} v{version} is not a valid JSON Schema: {message}")]
    InvalidSchema {
        dataset: DatasetName,
        version: u32,
        message: String,
    },
    #[error("contract {dataset} v{version}: {message}")]
    PartitionKey {
        dataset: DatasetName,
        version: u32,
        message: String,
    },
    #[error("contract {dataset} v{version} is defined twice")]
    Duplicate { dataset: DatasetName, version: u32 },
}

/// One way an event breaks its contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer into the event (`""` is the whole event, `/line_items/0/quantity` a nested field).
    pub pointer: String,
    /// The schema keyword that failed (`required`, `type`, `minimum`, ...).
    pub keyword: String,
    pub message: String,
}

/// A compiled contract of one dataset version.
#[derive(Debug)]
pub struct Contract {
    dataset: DatasetName,
    version: u32,
    partition_key: String,
    schema: Value,
    validator: jsonschema::Validator,
    /// The streaming check of valid events, when the contract uses only keywords it models.
    fast: Result<fast::FastSchema, fast::Unsupported>,
}

impl Contract {
    pub fn from_schema(dataset: DatasetName, version: u32, schema: Value) -> Result<Self, ContractError> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| ContractError::InvalidSchema {
                dataset: dataset.clone(),
                version,
                message: e.to_string(),
            })?;
        let partition_key = partition_key_field(&schema).map_err(|message| ContractError::PartitionKey {
            dataset: dataset.clone(),
            version,
            message,
        })?;
        let fast = fast::FastSchema::compile(&schema);
        if let Err(why) = &fast {
            tracing::info!(%dataset, version, "contract has no fast check (every event is parsed in full): {why}");
        }
        Ok(Self {
            dataset,
            version,
            partition_key,
            schema,
            validator,
            fast,
        })
    }

    pub fn dataset(&self) -> &DatasetName {
        &self.dataset
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The field whose value keys the Kafka record.
    pub fn partition_key_field(&self) -> &str {
        &self.partition_key
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Every violation of the contract, in the validator's order; empty means valid.
    pub fn violations(&self, event: &Value) -> Vec<Violation> {
        // The fast check allocates no errors; most events are valid.
        if self.validator.is_valid(event) {
            return Vec::new();
        }
        self.validator
            .iter_errors(event)
            .map(|e| Violation {
                pointer: e.instance_path().as_str().to_owned(),
                keyword: e.kind().keyword().to_owned(),
                message: e.to_string(),
            })
            .collect()
    }

    /// True only when `payload` is certainly one JSON object that meets the contract and has none of the
    /// `reserved` top-level fields, decided without building the event in memory ([`fast`]); false
    /// means "parse it and ask [`Self::violations`]".
    pub fn certainly_valid(&self, payload: &[u8], reserved: &[&str]) -> bool {
        self.fast
            .as_ref()
            .is_ok_and(|fast| fast.certainly_valid(payload, reserved))
    }

    /// [`Self::certainly_valid`], and the event's top-level members (name, value text) in `members`
    /// (cleared first) from the same pass when it is: a caller can read fields without scanning again.
    pub fn certainly_valid_members<'a>(
        &self,
        payload: &'a [u8],
        reserved: &[&str],
        members: &mut Vec<fast::Member<'a>>,
    ) -> bool {
        members.clear();
        self.fast
            .as_ref()
            .is_ok_and(|fast| fast.certainly_valid_members(payload, reserved, members))
    }

    /// The record key of an event that is certainly valid ([`Self::certainly_valid`]), read in the same
    /// pass; `None` means "parse it, ask [`Self::violations`] and [`Self::partition_key`]".
    pub fn certainly_valid_key(&self, payload: &[u8], reserved: &[&str]) -> Option<String> {
        (self.fast.as_ref().ok()?).certainly_valid_key(payload, reserved, &self.partition_key)
    }

    /// Why the contract has no fast check, if it has none.
    pub fn fast_check_unsupported(&self) -> Option<&fast::Unsupported> {
        self.fast.as_ref().err()
    }

    /// The record key of an event: the partition key field as text, if present and a string or integer.
    pub fn partition_key(&self, event: &Value) -> Option<String> {
        match event.get(&self.partition_key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            _ => None,
        }
    }
}

/// Reads and checks the partition key keyword: a required top-level string or integer property.
fn partition_key_field(schema: &Value) -> Result<String, String> {
    let field = schema
        .get(PARTITION_KEY_KEYWORD)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!("the schema must name its partition key field in \"{PARTITION_KEY_KEYWORD}\"")
        })?;
    let required = schema.get("required").and_then(Value::as_array);
    if !required.is_some_and(|r| r.iter().any(|f| f.as_str() == Some(field))) {
        return Err(format!(
            "partition key field {field:?} must be listed in \"required\""
        ));
    }
    let types: Vec<&str> = match schema.pointer(&format!("/properties/{}", escape_pointer(field))) {
        Some(prop) => match prop.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        },
        None => {
            return Err(format!(
                "partition key field {field:?} is not a declared property"
            ));
        }
    };
    if types.is_empty() || !types.iter().all(|t| *t == "string" || *t == "integer") {
        return Err(format!(
            "partition key field {field:?} must have type string or integer"
        ));
    }
    Ok(field.to_owned())
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Splits `orders.v1.json` into (`orders`, 1).
pub fn parse_file_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (dataset, version) = stem.rsplit_once(".v")?;
    let version: u32 = version.parse().ok().filter(|v| *v > 0)?;
    (!dataset.is_empty()).then_some((dataset, version))
}

/// Every contract known, by dataset and version.
#[derive(Debug, Default, Clone)]
pub struct ContractRegistry {
    contracts: BTreeMap<DatasetName, BTreeMap<u32, Arc<Contract>>>,
}

impl ContractRegistry {
    /// Loads every `*.json` file of `dir`; other files (README.md) are ignored, a misnamed JSON file is an error.
    pub fn load_dir(dir: &Path) -> Result<Self, ContractError> {
        let io = |source| ContractError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        paths.sort();
        let mut registry = Self::default();
        for path in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
        {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let (dataset, version) =
                parse_file_name(file_name).ok_or_else(|| ContractError::FileName { path: path.clone() })?;
            let dataset = DatasetName::new(dataset)?;
            let text = std::fs::read_to_string(&path).map_err(|source| ContractError::Io {
                path: path.clone(),
                source,
            })?;
            let schema = serde_json::from_str(&text).map_err(|source| ContractError::NotJson {
                path: path.clone(),
                source,
            })?;
            registry.insert(Contract::from_schema(dataset, version, schema)?)?;
        }
        Ok(registry)
    }

    pub fn insert(&mut self, contract: Contract) -> Result<(), ContractError> {
        let versions = self.contracts.entry(contract.dataset.clone()).or_default();
        if versions.contains_key(&contract.version) {
            return Err(ContractError::Duplicate {
                dataset: contract.dataset,
                version: contract.version,
            });
        }
        versions.insert(contract.version, Arc::new(contract));
        Ok(())
    }

    /// The newest version of a dataset's contract: the one new events are validated against.
    pub fn latest(&self, dataset: &str) -> Option<&Arc<Contract>> {
        self.contracts.get(dataset)?.values().next_back()
    }

    pub fn get(&self, dataset: &str, version: u32) -> Option<&Arc<Contract>> {
        self.contracts.get(dataset)?.get(&version)
    }

    /// A dataset's versions, oldest first.
    pub fn versions(&self, dataset: &str) -> impl Iterator<Item = u32> + '_ {
        self.contracts
            .get(dataset)
            .into_iter()
            .flat_map(|v| v.keys().copied())
    }

    pub fn datasets(&self) -> impl Iterator<Item = &DatasetName> {
        self.contracts.keys()
    }

    /// The newest contract of every dataset.
    pub fn latest_contracts(&self) -> impl Iterator<Item = &Arc<Contract>> {
        self.contracts
            .values()
            .filter_map(|versions| versions.values().next_back())
    }

    pub fn is_empty(&self) -> bool {
        self.contracts.is_empty()
    }
}

#[cfg(test)]
mod tests;
