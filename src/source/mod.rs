//! Stage 1 of the pipeline: where the config comes from. A local directory is read in place (and
//! watched by `serve`); a git remote — a local path to a repository, `file://`, HTTPS with a token or
//! SSH with a key — is cloned once into a cache directory and fetched on every pass.
//!
//! With a config path (`--path deploy/gatehouse`), only that folder of the repository is config: a
//! directory source reads and watches just that folder, a git source reports the folder's tree id so
//! that a commit touching only files elsewhere can be told apart (and skipped) without reading it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

/// What one fetch produced: a directory to read the config from, and the commit it is at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub dir: PathBuf,
    /// The commit, for a git source or a directory that is a clean git work tree.
    pub commit: Option<String>,
    /// The commit's author (`Name <email>`) and subject line.
    pub author: Option<String>,
    pub subject: Option<String>,
    /// The git tree id of the config folder: equal ids mean identical config, whatever else the
    /// commit changed. `None` for a directory source.
    pub tree: Option<String>,
}

/// The version of config read from a directory: the commit of a clean git work tree, otherwise a
/// hash of the config files' content (`content:` and 16 hex digits), which is the same on every run
/// for the same files and differs for any change.
pub fn directory_version(snapshot: &Snapshot, fingerprint: &[u8; 32]) -> String {
    snapshot.commit.clone().unwrap_or_else(|| format!("content:{}", &hex::encode(fingerprint)[..16]))
}

/// Checks a `--path`: relative, inside the repository.
pub fn config_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text.trim_end_matches('/'));
    let inside = path.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if path.as_os_str().is_empty() || !inside {
        return Err(format!(
            "`{text}` is not a folder inside the repository: give a relative path such as deploy/gatehouse"
        ));
    }
    Ok(path)
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot fetch {remote}: {message}")]
    Fetch { remote: String, message: String },
    #[error("{remote} has no folder `{path}` at commit {commit}")]
    NoConfigPath { remote: String, path: String, commit: String },
}

#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// HTTPS token (GitHub, GitLab, Gitea all accept it as the password).
    pub token: Option<Secret>,
    /// SSH private key file.
    pub ssh_key: Option<PathBuf>,
}

impl Credentials {
    /// Callbacks that answer the remote's questions with these credentials: the SSH key, else the
    /// token, else libgit2's defaults; a second refusal is an error rather than a loop.
    pub fn callbacks(&self) -> git2::RemoteCallbacks<'static> {
        let mut callbacks = git2::RemoteCallbacks::new();
        let credentials = self.clone();
        let mut attempts = 0;
        callbacks.credentials(move |_url, username, allowed| {
            // libgit2 asks again after a rejection; a second refusal means the credential is wrong.
            attempts += 1;
            if attempts > 2 {
                return Err(git2::Error::from_str("authentication failed: check the token or SSH key"));
            }
            if allowed.contains(git2::CredentialType::SSH_KEY)
                && let Some(key) = &credentials.ssh_key
            {
                return git2::Cred::ssh_key(username.unwrap_or("git"), None, key, None);
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
                && let Some(token) = &credentials.token
            {
                return git2::Cred::userpass_plaintext(username.unwrap_or("x-access-token"), token.expose());
            }
            git2::Cred::default()
        });
        callbacks
    }
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
    /// The config folder inside the repository; `None` for its root.
    pub path: Option<PathBuf>,
}

impl Source {
    /// A directory that is not a bare repository is read in place; anything else is a git remote.
    pub fn new(repo: &str, reference: Option<String>, cache: PathBuf, credentials: Credentials) -> Self {
        let path = Path::new(repo);
        if path.is_dir() && !path.join("HEAD").is_file() {
            Source::Directory(path.to_owned())
        } else {
            Source::Git(GitRemote { url: repo.to_owned(), reference, cache, credentials, path: None })
        }
    }

    /// Only `path` (relative to the repository root, see `config_path`) is config.
    pub fn with_path(self, path: Option<&Path>) -> Self {
        match (self, path) {
            (Source::Directory(dir), Some(path)) => Source::Directory(dir.join(path)),
            (Source::Git(remote), Some(path)) => Source::Git(GitRemote { path: Some(path.to_owned()), ..remote }),
            (source, None) => source,
        }
    }

    /// The local folder the config is read from (a git remote's checkout, kept by `fetch`): where
    /// the consoles read the line a resource is declared on.
    pub fn config_dir(&self) -> PathBuf {
        match self {
            Source::Directory(dir) => dir.clone(),
            Source::Git(remote) => remote.path.as_ref().map_or_else(|| remote.cache.clone(), |p| remote.cache.join(p)),
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
            Source::Directory(dir) if dir.is_dir() => Ok(clean_work_tree(dir)),
            Source::Directory(dir) => Err(SourceError::NotADirectory(dir.clone())),
            Source::Git(remote) => remote.fetch(),
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
    fn fetch(&self) -> Result<Snapshot, SourceError> {
        let failed = |e: git2::Error| SourceError::Fetch { remote: redact(&self.url), message: e.message().to_owned() };
        let mut snapshot = self.fetch_commit().map_err(failed)?;
        if let Some(path) = &self.path {
            let repo = git2::Repository::open(&self.cache).map_err(failed)?;
            let commit = snapshot.commit.clone().unwrap_or_default();
            let tree = git2::Oid::from_str(&commit)
                .and_then(|id| repo.find_commit(id))
                .and_then(|c| c.tree())
                .and_then(|tree| tree.get_path(path))
                .map_err(|_| SourceError::NoConfigPath {
                    remote: redact(&self.url),
                    path: path.display().to_string(),
                    commit: commit.clone(),
                })?;
            snapshot.tree = Some(tree.id().to_string());
            snapshot.dir = self.cache.join(path);
        }
        Ok(snapshot)
    }

    fn fetch_commit(&self) -> Result<Snapshot, git2::Error> {
        let repo = match git2::Repository::open(&self.cache) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(&self.cache).map_err(|e| git2::Error::from_str(&e.to_string()))?;
                git2::Repository::init(&self.cache)?
            }
        };
        let mut remote = repo.remote_anonymous(&self.url)?;
        let callbacks = self.credentials.callbacks();
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
        Ok(Snapshot {
            dir: self.cache.clone(),
            commit: Some(commit.id().to_string()),
            author: Some(author(&commit)),
            subject: commit.summary().map(str::to_owned),
            tree: Some(commit.tree_id().to_string()),
        })
    }
}

fn author(commit: &git2::Commit) -> String {
    let author = commit.author();
    match (author.name(), author.email()) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        (name, email) => name.or(email).unwrap_or("unknown").to_owned(),
    }
}

/// A directory read in place: its commit (with author and subject) when it is in a git work tree
/// whose config files under `dir` are all committed; otherwise no commit (the version is then the
/// content hash, see `directory_version`).
fn clean_work_tree(dir: &Path) -> Snapshot {
    let mut snapshot = Snapshot { dir: dir.to_owned(), ..Snapshot::default() };
    let Some(commit) = work_tree_commit(dir).filter(|c| !c.ends_with("-dirty")) else { return snapshot };
    let found = git2::Repository::discover(dir).ok().and_then(|repo| {
        repo.find_commit(git2::Oid::from_str(&commit).ok()?).ok().map(|c| (author(&c), c.summary().map(str::to_owned)))
    });
    if let Some((author, subject)) = found {
        snapshot.author = Some(author);
        snapshot.subject = subject;
    }
    snapshot.commit = Some(commit);
    snapshot
}

/// Removes `user:password@` from a URL.
pub fn redact(url: &str) -> String {
    let Some(scheme) = url.find("://") else { return url.to_owned() };
    let rest = &url[scheme + 3..];
    // The credentials end at the last `@` before the path: a password may hold an `@` itself.
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}://{}", &url[..scheme], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The commit checked out at `dir`, with `-dirty` when config files differ from it; `None` when `dir`
/// is not inside a git work tree.
pub fn work_tree_commit(dir: &Path) -> Option<String> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    // Only files below `dir` count: with a config path, edits elsewhere in the repository are not config.
    let workdir = repo.workdir().and_then(|w| w.canonicalize().ok());
    let below = dir.canonicalize().ok().zip(workdir).and_then(|(d, w)| d.strip_prefix(w).ok().map(Path::to_owned));
    if let Some(below) = below.filter(|b| !b.as_os_str().is_empty()) {
        options.pathspec(below);
    }
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
        assert_eq!(redact("https://u:p@ss@host.example/a@b.git"), "https://host.example/a@b.git");
    }

    #[test]
    fn a_config_path_stays_inside_the_repository() {
        assert_eq!(config_path("deploy/gatehouse/"), Ok(PathBuf::from("deploy/gatehouse")));
        assert!(config_path("/etc").is_err());
        assert!(config_path("../other").is_err());
        assert!(config_path("").is_err());
    }

    #[test]
    fn a_directory_version_is_its_clean_commit_or_a_hash_of_its_content() {
        let snapshot = Snapshot::default();
        let a = directory_version(&snapshot, &[1; 32]);
        assert_eq!(a, "content:0101010101010101");
        assert_ne!(a, directory_version(&snapshot, &[2; 32]));
        let committed = Snapshot { commit: Some("abc".into()), ..Snapshot::default() };
        assert_eq!(directory_version(&committed, &[1; 32]), "abc");
    }
}
