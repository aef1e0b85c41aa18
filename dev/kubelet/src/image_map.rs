//! Maps a container image to what runs in its place on this host: a program of ours, or a host program.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ImageMapError {
    #[error("cannot read image map {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("image map {path} is not valid YAML of the expected shape: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("image map entry {image:?}: {problem}")]
    Entry { image: String, problem: String },
}

/// The file as written: `images: { <repository>: { program: PATH | host: true, args: [...], env: {...} } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageMapFile {
    images: BTreeMap<String, ImageEntryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageEntryFile {
    program: Option<String>,
    #[serde(default)]
    host: bool,
    /// The image's default arguments (its CMD), used when the container sets neither command nor args.
    #[serde(default)]
    args: Vec<String>,
    /// Extra environment for the process, as an image's ENV would give it.
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// What an image stands for on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entrypoint {
    /// The image's entrypoint is this program (already expanded).
    Program(PathBuf),
    /// The image has no entrypoint: the container's command runs as a host program found on PATH.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub entrypoint: Entrypoint,
    pub default_args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: BTreeMap<String, ImageEntry>,
}

impl ImageMap {
    pub fn load(path: &Path) -> Result<Self, ImageMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImageMapError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: ImageMapFile = serde_yaml::from_str(&text).map_err(|source| ImageMapError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Self::from_file(file, &|name| std::env::var(name).ok())
    }

    fn from_file(file: ImageMapFile, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ImageMapError> {
        let mut entries = BTreeMap::new();
        for (image, raw) in file.images {
            let problem = |problem: String| ImageMapError::Entry {
                image: image.clone(),
                problem,
            };
            let entrypoint = match (raw.program, raw.host) {
                (Some(program), false) => {
                    let expanded = expand_host_vars(&program, lookup).map_err(problem)?;
                    Entrypoint::Program(PathBuf::from(expanded))
                }
                (None, true) => Entrypoint::Host,
                (Some(_), true) => {
                    return Err(problem("set either `program` or `host: true`, not both".into()));
                }
                (None, false) => return Err(problem("set `program: PATH` or `host: true`".into())),
            };
            let env = raw
                .env
                .into_iter()
                .map(|(k, v)| expand_host_vars(&v, lookup).map(|v| (k, v)))
                .collect::<Result<_, _>>()
                .map_err(problem)?;
            entries.insert(
                normalize_repository(&image),
                ImageEntry {
                    entrypoint,
                    default_args: raw.args,
                    env,
                },
            );
        }
        Ok(Self { entries })
    }

    /// The entry for an image reference such as `docker.io/library/busybox:1.36` (tag and digest ignored).
    pub fn resolve(&self, image: &str) -> Option<&ImageEntry> {
        self.entries.get(&normalize_repository(&repository_of(image)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The repository part of an image reference: without `@digest` and without `:tag`.
pub fn repository_of(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(colon) => without_digest[..last_slash + colon].to_owned(),
        None => without_digest.to_owned(),
    }
}

/// `busybox`, `library/busybox` and `docker.io/library/busybox` name the same repository.
fn normalize_repository(repository: &str) -> String {
    let repository = repository.trim();
    let stripped = repository
        .strip_prefix("docker.io/")
        .or_else(|| repository.strip_prefix("index.docker.io/"))
        .unwrap_or(repository);
    stripped.strip_prefix("library/").unwrap_or(stripped).to_owned()
}

/// Expands `$VAR` and `${VAR}` from the kubelet's environment; an unset variable is an error, `$$` is `$`.
pub fn expand_host_vars(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let name = match chars.peek() {
            Some('$') => {
                chars.next();
                out.push('$');
                continue;
            }
            Some('{') => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break name,
                        Some(c) => name.push(c),
                        None => return Err(format!("unterminated ${{ in {text:?}")),
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let mut name = String::new();
                while let Some(c) = chars
                    .peek()
                    .copied()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    name.push(c);
                    chars.next();
                }
                name
            }
            _ => {
                out.push('$');
                continue;
            }
        };
        match lookup(&name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("environment variable {name} used in {text:?} is not set")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "CARGO_TARGET_DIR" => Some("/cache/target".into()),
            "HOME" => Some("/root".into()),
            _ => None,
        }
    }

    fn parse(yaml: &str) -> Result<ImageMap, ImageMapError> {
        let file: ImageMapFile = serde_yaml::from_str(yaml).expect("test YAML parses");
        ImageMap::from_file(file, &env)
    }

    #[test]
    fn repository_drops_tag_and_digest_but_keeps_registry_port() {
        assert_eq!(repository_of("busybox"), "busybox");
        assert_eq!(repository_of("busybox:1.36"), "busybox");
        assert_eq!(
            repository_of("ghcr.io/streamlake/ingest-api:dev"),
            "ghcr.io/streamlake/ingest-api"
        );
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(
            repository_of("localhost:5000/app:v1@sha256:abc"),
            "localhost:5000/app"
        );
    }

    #[test]
    fn resolves_programs_with_expanded_paths_and_docker_hub_aliases() {
        let map = parse(
            "images:\n  streamlake/ingest-api:\n    program: ${CARGO_TARGET_DIR}/debug/ingest-api\n    args: [serve]\n  \
             busybox:\n    host: true\n    env: {HOME_COPY: $HOME}\n",
        )
        .expect("valid map");
        let api = map.resolve("streamlake/ingest-api:latest").expect("mapped");
        assert_eq!(
            api.entrypoint,
            Entrypoint::Program(PathBuf::from("/cache/target/debug/ingest-api"))
        );
        assert_eq!(api.default_args, vec!["serve".to_string()]);
        let shell = map
            .resolve("docker.io/library/busybox:1.36")
            .expect("alias of busybox");
        assert_eq!(shell.entrypoint, Entrypoint::Host);
        assert_eq!(shell.env.get("HOME_COPY").map(String::as_str), Some("/root"));
        assert!(map.resolve("nginx:1.27").is_none());
    }

    #[test]
    fn rejects_ambiguous_or_empty_entries_and_unset_variables() {
        assert!(parse("images:\n  a:\n    host: true\n    program: /bin/a\n").is_err());
        assert!(parse("images:\n  a: {}\n").is_err());
        let err = parse("images:\n  a:\n    program: $NOPE/bin\n").expect_err("unset variable");
        assert!(err.to_string().contains("NOPE"), "{err}");
    }

    #[test]
    fn host_var_expansion_forms() {
        assert_eq!(expand_host_vars("$HOME/x", &env).as_deref(), Ok("/root/x"));
        assert_eq!(expand_host_vars("${HOME}x", &env).as_deref(), Ok("/rootx"));
        assert_eq!(expand_host_vars("a$$b $1", &env).as_deref(), Ok("a$b $1"));
        assert!(expand_host_vars("${HOME", &env).is_err());
    }
}
