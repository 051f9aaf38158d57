//! Publish tokens: loaded from a file, compared in constant time, never logged.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted, so a typo'd file cannot configure a guessable token.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the file failed.
    // The cause is the error's source: printed once, after this line, by
    // whoever prints the chain.
    #[error("token file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file has no tokens.
    #[error("token file {0} holds no tokens (one token per line; '#' starts a comment)")]
    Empty(PathBuf),
    /// A token is too short.
    #[error("token file {path}, line {line}: tokens must be at least {MIN_TOKEN_LEN} characters")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// 1-based line number (the token itself is never printed).
        line: usize,
    },
    /// Randomness unavailable.
    #[error("cannot generate a token: {0}")]
    Random(String),
}

/// The set of accepted publish tokens (kept only as sha256 hashes).
#[derive(Clone)]
pub struct Tokens {
    hashes: Vec<[u8; 32]>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} configured)", self.hashes.len())
    }
}

fn hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    /// Tokens from a file: one per line, blank lines and `#` comments ignored.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Tokens from the text of the file at `path` (named in errors only).
    pub fn parse(text: &str, path: &Path) -> Result<Self, TokenError> {
        let mut hashes = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokenError::TooShort {
                    path: path.to_owned(),
                    line: i + 1,
                });
            }
            hashes.push(hash(token.as_bytes()));
        }
        if hashes.is_empty() {
            return Err(TokenError::Empty(path.to_owned()));
        }
        Ok(Self { hashes })
    }

    /// Whether `candidate` is one of the tokens. Comparing fixed-size hashes,
    /// over every token, keeps the time independent of where a mismatch is.
    pub fn accepts(&self, candidate: &str) -> bool {
        let h = hash(candidate.as_bytes());
        self.hashes
            .iter()
            .fold(subtle::Choice::from(0), |acc, t| acc | t.ct_eq(&h))
            .into()
    }
}

/// Reads `path` if it holds anything, otherwise writes a fresh random token
/// there with mode 0600. Returns whether it was generated.
///
/// Atomic: the token is written to a temporary file in the same directory,
/// synced, then renamed over `path` (and the directory synced), so a crash
/// leaves either no file or a whole one. An empty file, as a crash of an
/// earlier version could leave, is replaced rather than blocking every start.
pub fn ensure_generated(path: &Path) -> Result<bool, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => return Ok(false),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the generated token file is empty (an interrupted first start?); generating a new token")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io)?;
            dir.to_owned()
        }
        None => PathBuf::from("."),
    };
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
    let token = hex::encode(raw);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(file, "# publish token generated by banter-registry; one token per line")?;
        writeln!(file, "{token}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)?;
    Ok(true)
}

/// The tokens in force, replaced in place when the file changes.
pub struct LiveTokens {
    current: std::sync::RwLock<Tokens>,
}

impl fmt::Debug for LiveTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.current.read() {
            Ok(t) => write!(f, "{t:?}"),
            Err(_) => f.write_str("Tokens(unavailable)"),
        }
    }
}

impl LiveTokens {
    /// Starts with `tokens`.
    pub fn new(tokens: Tokens) -> Self {
        Self {
            current: std::sync::RwLock::new(tokens),
        }
    }

    /// Whether `candidate` is one of the tokens in force.
    pub fn accepts(&self, candidate: &str) -> bool {
        self.current.read().is_ok_and(|t| t.accepts(candidate))
    }

    fn replace(&self, tokens: Tokens) {
        if let Ok(mut t) = self.current.write() {
            *t = tokens;
        }
    }
}

/// How often the token file is checked for changes.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Re-reads `path` every `interval`; when its content changed, the new
/// tokens replace the old ones at once (kubelet rewrites a mounted Secret in
/// place, by an atomic symlink swap, so reading the path sees whole files).
/// A file that cannot be read or holds no valid token keeps the previous set
/// in force, logs one error per distinct content and counts `error`.
pub async fn watch(
    path: PathBuf,
    live: std::sync::Arc<LiveTokens>,
    metrics: crate::metrics::Metrics,
    interval: std::time::Duration,
) {
    let mut last = std::fs::read(&path).map(|b| Sha256::digest(&b)).ok();
    loop {
        tokio::time::sleep(interval).await;
        let read = std::fs::read(&path);
        let now = read.as_ref().map(Sha256::digest).ok();
        if now == last {
            continue;
        }
        last = now;
        // The bytes just compared are the ones parsed: one read per check.
        let text = read
            .and_then(|b| String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)));
        let parsed = match text {
            Ok(text) => Tokens::parse(&text, &path),
            Err(source) => Err(TokenError::Io {
                path: path.clone(),
                source,
            }),
        };
        match parsed {
            Ok(tokens) => {
                tracing::info!(file = %path.display(), "publish tokens reloaded: {tokens:?}");
                live.replace(tokens);
                metrics.token_reload("ok");
            }
            Err(e) => {
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::from(e)),
                    "the changed token file cannot be used; the previous tokens stay in force"
                );
                metrics.token_reload("error");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_comments_and_checks_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t");
        std::fs::write(&p, "# ci\n\n  aaaaaaaaaaaaaaaaaaaa  \nbbbbbbbbbbbbbbbbbbbb\n").expect("write");
        let t = Tokens::from_file(&p).expect("tokens");
        assert!(t.accepts("aaaaaaaaaaaaaaaaaaaa"));
        assert!(t.accepts("bbbbbbbbbbbbbbbbbbbb"));
        assert!(!t.accepts("aaaaaaaaaaaaaaaaaaa"));
        assert!(!t.accepts(""));
        assert!(!format!("{t:?}").contains("aaaa"));
    }

    #[test]
    fn rejects_empty_and_short() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t");
        std::fs::write(&p, "# nothing\n").expect("write");
        assert!(matches!(Tokens::from_file(&p), Err(TokenError::Empty(_))));
        std::fs::write(&p, "short\n").expect("write");
        let e = Tokens::from_file(&p).expect_err("short");
        assert!(!e.to_string().contains("short\n"));
        assert!(matches!(e, TokenError::TooShort { line: 1, .. }));
    }

    #[test]
    fn generates_once_with_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/publish-token");
        assert!(ensure_generated(&p).expect("gen"));
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read_to_string(&p).expect("read");
        assert!(!ensure_generated(&p).expect("again"));
        assert_eq!(std::fs::read_to_string(&p).expect("read"), first);
        Tokens::from_file(&p).expect("usable");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().expect("dir"))
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn an_empty_file_from_an_interrupted_start_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("publish-token");
        std::fs::write(&p, "").expect("empty file");
        assert!(
            ensure_generated(&p).expect("regenerated"),
            "an empty file does not block"
        );
        Tokens::from_file(&p).expect("usable");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
