//! Stage 1 of the pipeline: where the config comes from. A local directory is read in place (and
//! watched by `serve`); a git remote — a local path to a repository, `file://`, HTTPS with a token or
//! SSH with a key — is cloned once into a cache directory and fetched on every pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one fetch produced: a directory to read the config from, and the commit it is at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub commit: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot fetch {remote}: {message}")]
    Fetch { remote: String, message: String },
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// HTTPS token (GitHub, GitLab, Gitea all accept it as the password).
    pub token: Option<Secret>,
    /// SSH private key file.
    pub ssh_key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// A directory read in place: a work tree or any folder of YAML.
    Directory(PathBuf),
    Git(GitRemote),
}

#[derive(Debug, Clone)]
pub struct GitRemote {
    pub url: String,
    /// Branch, tag or full ref; `None` for the remote's HEAD.
    pub reference: Option<String>,
    pub cache: PathBuf,
    pub credentials: Credentials,
}

impl Source {
    /// A directory that is not a bare repository is read in place; anything else is a git remote.
    pub fn new(repo: &str, reference: Option<String>, cache: PathBuf, credentials: Credentials) -> Self {
        let path = Path::new(repo);
        if path.is_dir() && !path.join("HEAD").is_file() {
            Source::Directory(path.to_owned())
        } else {
            Source::Git(GitRemote { url: repo.to_owned(), reference, cache, credentials })
        }
    }

    /// Where the config comes from, safe to log: credentials in a URL are removed.
    pub fn describe(&self) -> String {
        match self {
            Source::Directory(dir) => dir.display().to_string(),
            Source::Git(remote) => redact(&remote.url),
        }
    }

    /// Fetches the newest state. Blocking (git2): call it from `spawn_blocking`.
    pub fn fetch(&self) -> Result<Snapshot, SourceError> {
        match self {
            Source::Directory(dir) if dir.is_dir() => Ok(Snapshot { dir: dir.clone(), commit: work_tree_commit(dir) }),
            Source::Directory(dir) => Err(SourceError::NotADirectory(dir.clone())),
            Source::Git(remote) => remote
                .fetch()
                .map_err(|e| SourceError::Fetch { remote: redact(&remote.url), message: e.message().to_owned() }),
        }
    }
}

/// Sets libgit2's network timeouts once, before any fetch.
pub fn set_network_timeouts(connect: Duration, io: Duration) {
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: these set process-wide libgit2 options; libgit2 asks that they are not changed while
    // another thread uses it, which holds because `serve` calls this once at start-up, before any
    // git operation.
    #[allow(unsafe_code)]
    let result = unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect))
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(millis(io)))
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot set git network timeouts");
    }
}

/// Where the fetched commit is kept in the cache repository.
const FETCHED: &str = "refs/gatehouse/fetched";

impl GitRemote {
    fn fetch(&self) -> Result<Snapshot, git2::Error> {
        let repo = match git2::Repository::open(&self.cache) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&self.cache).map_err(|e| git2::Error::from_str(&e.to_string()))?;
                git2::Repository::init(&self.cache)?
            }
        };
        let mut remote = repo.remote_anonymous(&self.url)?;
        let mut callbacks = git2::RemoteCallbacks::new();
        let credentials = self.credentials.clone();
        let mut attempts = 0;
        callbacks.credentials(move |_url, username, allowed| {
            // libgit2 asks again after a rejection; a second refusal means the credential is wrong.
            attempts += 1;
            if attempts > 2 {
                return Err(git2::Error::from_str("authentication failed: check the token or SSH key"));
            }
            if allowed.contains(git2::CredentialType::SSH_KEY) {
                if let Some(key) = &credentials.ssh_key {
                    return git2::Cred::ssh_key(username.unwrap_or("git"), None, key, None);
                }
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                if let Some(token) = &credentials.token {
                    return git2::Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token.expose());
                }
            }
            git2::Cred::default()
        });
        let mut options = git2::FetchOptions::new();
        options.remote_callbacks(callbacks).download_tags(git2::AutotagOption::None);
        // Fetching into a ref of our own (not just FETCH_HEAD) lets the next fetch tell the remote what
        // it already has, so it downloads only the new commits' objects.
        let reference = self.reference.as_deref().unwrap_or("HEAD");
        let refspec = format!("+{reference}:{FETCHED}");
        remote.fetch(&[refspec.as_str()], Some(&mut options), None)?;
        let commit = repo.find_reference(FETCHED)?.peel_to_commit()?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.force().remove_untracked(true);
        repo.checkout_tree(commit.as_object(), Some(&mut checkout))?;
        repo.set_head_detached(commit.id())?;
        Ok(Snapshot { dir: self.cache.clone(), commit: Some(commit.id().to_string()) })
    }
}

/// Removes `user:password@` from a URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The commit checked out at `dir`, with `-dirty` when config files differ from it; `None` when `dir`
/// is not inside a git work tree.
pub fn work_tree_commit(dir: &Path) -> Option<String> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let dirty = repo.statuses(Some(&mut options)).ok().is_some_and(|statuses| {
        statuses.iter().any(|s| s.path().is_some_and(|p| p.ends_with(".yaml") || p.ends_with(".yml")))
    });
    Some(if dirty { format!("{head}-dirty") } else { head })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(
            redact("https://x-access-token:ghp_secret@github.example/org/config.git"),
            "https://github.example/org/config.git"
        );
        assert_eq!(redact("ssh://git@host.example/config.git"), "ssh://host.example/config.git");
        assert_eq!(redact("/srv/config.git"), "/srv/config.git");
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "<redacted>");
    }
}
