//! The argv a container runs: Kubernetes command/args semantics over an image's entrypoint, and $(VAR) expansion.

use std::collections::BTreeMap;
use std::path::Path;

use crate::image_map::{Entrypoint, ImageEntry};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error(
        "image {image:?} has no entrypoint on this host (it maps to host programs): set the container's command"
    )]
    NoCommand { image: String },
}

/// Kubernetes semantics: `command` replaces the entrypoint (and drops the image's default args), `args`
/// replaces the default args; both are expanded with the container's environment.
pub fn invocation(
    image: &str,
    entry: &ImageEntry,
    command: &[String],
    args: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Invocation, CommandError> {
    let command: Vec<String> = command.iter().map(|c| expand(c, env)).collect();
    let args: Vec<String> = args.iter().map(|a| expand(a, env)).collect();
    let mut argv: Vec<String> = if !command.is_empty() {
        let mut argv = command;
        if let (Entrypoint::Program(program), Some(first)) = (&entry.entrypoint, argv.first_mut()) {
            // The image's own binary named by its in-image path (e.g. /usr/local/bin/ingest-api) is our program.
            if Path::new(first.as_str()).file_name() == program.file_name() {
                *first = program.to_string_lossy().into_owned();
            }
        }
        argv.extend(args);
        argv
    } else {
        let mut argv = match &entry.entrypoint {
            Entrypoint::Program(program) => vec![program.to_string_lossy().into_owned()],
            Entrypoint::Host => Vec::new(),
        };
        argv.extend(if args.is_empty() {
            entry.default_args.clone()
        } else {
            args
        });
        argv
    };
    if argv.is_empty() {
        return Err(CommandError::NoCommand {
            image: image.to_owned(),
        });
    }
    let program = argv.remove(0);
    Ok(Invocation { program, args: argv })
}

/// Kubernetes `$(VAR)` expansion: unknown references stay as written, `$$` escapes a `$`.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' || i + 1 >= bytes.len() {
            let ch_len = utf8_len(bytes[i]);
            out.push_str(&input[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        match bytes[i + 1] {
            b'$' => {
                out.push('$');
                i += 2;
            }
            b'(' => match input[i + 2..].find(')') {
                Some(close) => {
                    let name = &input[i + 2..i + 2 + close];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&input[i..i + 3 + close]),
                    }
                    i += 3 + close;
                }
                None => {
                    out.push_str(&input[i..]);
                    i = bytes.len();
                }
            },
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

fn utf8_len(first_byte: u8) -> usize {
    match first_byte {
        b if b < 0x80 => 1,
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn vars() -> BTreeMap<String, String> {
        [("POD_IP", "127.42.0.7"), ("PORT", "8080")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn program_image() -> ImageEntry {
        ImageEntry {
            entrypoint: Entrypoint::Program(PathBuf::from("/t/debug/ingest-api")),
            default_args: strings(&["serve"]),
            env: BTreeMap::new(),
        }
    }

    fn host_image() -> ImageEntry {
        ImageEntry {
            entrypoint: Entrypoint::Host,
            default_args: vec![],
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let v = vars();
        assert_eq!(expand("--bind=$(POD_IP):$(PORT)", &v), "--bind=127.42.0.7:8080");
        assert_eq!(expand("$(MISSING)", &v), "$(MISSING)");
        assert_eq!(expand("$$(POD_IP)", &v), "$(POD_IP)");
        assert_eq!(expand("cost $5 and $", &v), "cost $5 and $");
        assert_eq!(expand("$(POD_IP", &v), "$(POD_IP");
        assert_eq!(expand("héllo $(PORT)", &v), "héllo 8080");
    }

    #[test]
    fn image_defaults_apply_only_without_command_and_args() {
        let inv = invocation("api", &program_image(), &[], &[], &vars()).expect("runs");
        assert_eq!(
            inv,
            Invocation {
                program: "/t/debug/ingest-api".into(),
                args: strings(&["serve"])
            }
        );
        let inv = invocation(
            "api",
            &program_image(),
            &[],
            &strings(&["--port=$(PORT)"]),
            &vars(),
        )
        .expect("runs");
        assert_eq!(inv.args, strings(&["--port=8080"]));
    }

    #[test]
    fn command_replaces_entrypoint_and_maps_the_in_image_binary() {
        let cmd = strings(&["/usr/local/bin/ingest-api", "check"]);
        let inv = invocation("api", &program_image(), &cmd, &strings(&["-v"]), &vars()).expect("runs");
        assert_eq!(inv.program, "/t/debug/ingest-api");
        assert_eq!(inv.args, strings(&["check", "-v"]));
        let inv = invocation(
            "api",
            &program_image(),
            &strings(&["sh", "-c", "x"]),
            &[],
            &vars(),
        )
        .expect("runs");
        assert_eq!(inv.program, "sh");
    }

    #[test]
    fn host_images_need_a_command_or_args() {
        let inv = invocation(
            "busybox",
            &host_image(),
            &strings(&["sh", "-c"]),
            &strings(&["echo $(PORT)"]),
            &vars(),
        )
        .expect("runs");
        assert_eq!(
            inv,
            Invocation {
                program: "sh".into(),
                args: strings(&["-c", "echo 8080"])
            }
        );
        let inv =
            invocation("busybox", &host_image(), &[], &strings(&["sleep", "1"]), &vars()).expect("runs");
        assert_eq!(inv.program, "sleep");
        assert_eq!(
            invocation("busybox", &host_image(), &[], &[], &vars()),
            Err(CommandError::NoCommand {
                image: "busybox".into()
            })
        );
    }
}
