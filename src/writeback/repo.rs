//! Where a write-back's commit is made (issue 24.2, 24.6): a clone of its own for a git remote
//! (fetched, edited, validated, committed and pushed; redone on the new head when the remote moved),
//! or the git work tree a local config folder is in. Blocking (git2): run it on a blocking thread.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::edit::{Edit, Refusal};
use crate::config::ParseCache;
use crate::source::{GitRemote, Source, redact};

/// Where the fetched head of the tracked branch is kept in the write-back clone.
const BASE: &str = "refs/gatehouse/write-back-base";
/// Pushes redone on a moved remote before giving up.
const ATTEMPTS: usize = 8;

/// Why a write-back did not land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Git changed what the caller read: `409 git_conflict`, naming the commit.
    Conflict(String),
    /// The file cannot be edited in place: `409 write_back_by_hand`.
    ByHand(String),
    /// The edited repository does not validate: `422 invalid_config`, each problem with file:line.
    Invalid(Vec<String>),
    /// The remote refused the push (a protected branch, a hook): `502 write_back_failed`.
    Rejected(String),
    /// The config source cannot take commits (not a git repository, a tag, a dirty file): `409`.
    Unavailable(String),
    /// Fetching or pushing failed (unreachable remote, credentials): `502 write_back_failed`.
    Git(String),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Conflict(m)
            | Failure::ByHand(m)
            | Failure::Rejected(m)
            | Failure::Unavailable(m)
            | Failure::Git(m) => m.clone(),
            Failure::Invalid(problems) => problems.join("; "),
        }
    }
}

fn git(e: git2::Error) -> Failure {
    Failure::Git(e.message().to_owned())
}

/// Who the commit is by, and what it says.
pub struct Authored {
    pub name: String,
    pub email: String,
    pub message: String,
}

/// Which ref the commit goes to.
pub enum Destination {
    /// The tracked branch (`direct`).
    Tracked,
    /// A branch of its own (`review`), such as `gatehouse/acme/0193…`.
    Branch(String),
}

/// A commit made.
#[derive(Debug, Clone)]
pub struct Written {
    pub commit: String,
    /// The head it was made on.
    pub base: String,
    /// The file's change as a unified diff.
    pub diff: String,
    /// The file already said so: nothing was committed (`commit` is the head).
    pub unchanged: bool,
}

enum Place {
    Remote { remote: GitRemote, clone: PathBuf },
    WorkTree { dir: PathBuf },
    NotARepository { dir: PathBuf },
}

/// The write-back's repository, its parsed files and what the last head validated to.
pub struct Workspace {
    place: Place,
    committer: (String, String),
    parsed: ParseCache,
    /// The tracked branch (`refs/heads/…`), once known.
    branch: Option<String>,
    /// The problems of the config at a head, so a change is refused only for problems it adds.
    known: Option<(String, BTreeSet<String>)>,
}

impl Workspace {
    pub fn new(source: &Source, committer: (String, String)) -> Workspace {
        let place = match source {
            Source::Git(remote) => {
                let mut clone = remote.cache.clone().into_os_string();
                clone.push(".write-back");
                Place::Remote { remote: remote.clone(), clone: clone.into() }
            }
            Source::Directory(dir) if git2::Repository::discover(dir).is_ok_and(|r| r.workdir().is_some()) => {
                Place::WorkTree { dir: dir.clone() }
            }
            Source::Directory(dir) => Place::NotARepository { dir: dir.clone() },
        };
        Workspace { place, committer, parsed: ParseCache::default(), branch: None, known: None }
    }

    /// Makes `edit` of `file` (relative to the config folder) on the newest head and commits it to
    /// `destination`; for a remote, pushes it, redoing the edit on the new head if the remote moved.
    pub fn write(
        &mut self,
        file: &str,
        edits: &[Edit],
        authored: &Authored,
        destination: &Destination,
    ) -> Result<Written, Failure> {
        match &self.place {
            Place::NotARepository { dir } => Err(Failure::Unavailable(format!(
                "the config folder {} is not in a git repository, so a change cannot be committed; make it a git work tree or serve from a git remote",
                dir.display()
            ))),
            Place::WorkTree { dir } => {
                let dir = dir.clone();
                self.write_work_tree(&dir, file, edits, authored, destination)
            }
            Place::Remote { remote, clone } => {
                let (remote, clone) = (remote.clone(), clone.clone());
                self.write_remote(&remote, &clone, file, edits, authored, destination)
            }
        }
    }

    fn write_remote(
        &mut self,
        remote: &GitRemote,
        clone: &Path,
        file: &str,
        edits: &[Edit],
        authored: &Authored,
        destination: &Destination,
    ) -> Result<Written, Failure> {
        let repo = open_clone(clone).map_err(git)?;
        let branch = self.tracked_branch(&repo, remote)?;
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let started = std::time::Instant::now();
            let head = fetch(&repo, remote, &branch)?;
            let fetched = started.elapsed();
            let config = config_dir(&repo, remote.path.as_deref())?;
            let written = self.commit(&repo, &head, &config, file, edits, authored)?;
            let committed = started.elapsed();
            if written.unchanged {
                return Ok(written);
            }
            let target = match destination {
                Destination::Tracked => branch.clone(),
                Destination::Branch(name) => format!("refs/heads/{name}"),
            };
            let base = matches!(destination, Destination::Tracked).then_some(head.id());
            match push_to(&repo, remote, &written.commit, &target, base) {
                Ok(()) => {
                    tracing::info!(
                        commit = %written.commit, %target,
                        fetch_ms = fetched.as_millis(),
                        edit_and_validate_ms = (committed - fetched).as_millis(),
                        push_ms = (started.elapsed() - committed).as_millis(),
                        "write-back pushed"
                    );
                    return Ok(written);
                }
                Err(Pushed::Behind(message)) => last = message,
                Err(Pushed::Refused(message)) => return Err(Failure::Rejected(message)),
                Err(Pushed::Failed(message)) => return Err(Failure::Git(message)),
            }
        }
        Err(Failure::Git(format!("the remote kept moving: {ATTEMPTS} pushes in a row were behind it ({last})")))
    }

    fn write_work_tree(
        &mut self,
        dir: &Path,
        file: &str,
        edits: &[Edit],
        authored: &Authored,
        destination: &Destination,
    ) -> Result<Written, Failure> {
        let repo = git2::Repository::discover(dir).map_err(git)?;
        if matches!(destination, Destination::Branch(_)) {
            return Err(Failure::Unavailable(
                "review needs a git remote to push a branch to; a local work tree takes `writeBack: direct` only"
                    .into(),
            ));
        }
        let head_ref = repo.head().map_err(git)?;
        if !head_ref.is_branch() {
            return Err(Failure::Unavailable(format!("the work tree of {} is not on a branch", dir.display())));
        }
        let head = head_ref.peel_to_commit().map_err(git)?;
        let relative = relative_to_work_tree(&repo, &dir.join(file))?;
        let status = repo.status_file(&relative).map_err(git)?;
        if !status.is_empty() {
            return Err(Failure::Unavailable(format!(
                "{file} has changes that are not committed; commit or discard them first"
            )));
        }
        let written = self.commit(&repo, &head, dir, file, edits, authored)?;
        if !written.unchanged {
            let id = git2::Oid::from_str(&written.commit).map_err(git)?;
            let name = head_ref.name().unwrap_or("HEAD").to_owned();
            // Moved only from the head the edit was made on: a commit made meanwhile is kept.
            repo.reference_matching(&name, id, true, head.id(), "gatehouse write-back").map_err(|e| {
                Failure::Conflict(format!("{name} moved while the change was being made ({}); try again", e.message()))
            })?;
            let mut index = repo.index().map_err(git)?;
            index.add_path(&relative).map_err(git)?;
            index.write().map_err(git)?;
        }
        Ok(written)
    }

    /// Edits, validates and commits `file` on `head` (no ref moved); the work tree holds the file as
    /// edited when it succeeds, and as it was when it fails.
    fn commit(
        &mut self,
        repo: &git2::Repository,
        head: &git2::Commit,
        config: &Path,
        file: &str,
        edits: &[Edit],
        authored: &Authored,
    ) -> Result<Written, Failure> {
        let short = &head.id().to_string()[..7];
        let path = config.join(file);
        let plain = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !plain || !Path::new(file).components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(Failure::Conflict(format!(
                "{file} is not a plain file inside the config folder at commit {short}"
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Failure::Conflict(format!("{file} cannot be read at commit {short}: {e}")))?;
        let mut edited = text.clone();
        for edit in edits {
            edited = edit.apply(&edited).map_err(|refusal| match refusal {
                Refusal::Conflict(m) => Failure::Conflict(format!("{file} changed in Git (commit {short}): {m}")),
                Refusal::ByHand(m) => Failure::ByHand(format!("{file}: {m}")),
            })?;
        }
        let base = head.id().to_string();
        if edited == text {
            return Ok(Written { commit: base.clone(), base, diff: String::new(), unchanged: true });
        }
        let before = self.problems_at(&base, config)?;
        std::fs::write(&path, &edited).map_err(|e| Failure::Git(format!("cannot write {file}: {e}")))?;
        let after = self.problems(config)?;
        let added: Vec<String> = after.difference(&before).cloned().collect();
        if !added.is_empty() {
            std::fs::write(&path, &text).map_err(|e| Failure::Git(format!("cannot restore {file}: {e}")))?;
            return Err(Failure::Invalid(added));
        }
        let relative = relative_to_work_tree(repo, &path)?;
        let tree = tree_with(repo, head, &relative, edited.as_bytes()).map_err(git)?;
        let author = git2::Signature::now(&authored.name, &authored.email).map_err(git)?;
        let committer = git2::Signature::now(&self.committer.0, &self.committer.1).map_err(git)?;
        let id = repo.commit(None, &author, &committer, &authored.message, &tree, &[head]).map_err(git)?;
        let diff = similar::TextDiff::from_lines(&text, &edited)
            .unified_diff()
            .header(&format!("a/{}", relative.display()), &format!("b/{}", relative.display()))
            .to_string();
        self.known = Some((id.to_string(), after));
        Ok(Written { commit: id.to_string(), base, diff, unchanged: false })
    }

    /// The problems of the config as it is checked out at `head`.
    fn problems_at(&mut self, head: &str, config: &Path) -> Result<BTreeSet<String>, Failure> {
        if let Some((at, problems)) = &self.known
            && at == head
        {
            return Ok(problems.clone());
        }
        let problems = self.problems(config)?;
        self.known = Some((head.to_owned(), problems.clone()));
        Ok(problems)
    }

    fn problems(&mut self, config: &Path) -> Result<BTreeSet<String>, Failure> {
        let validated = crate::config::load_repo_cached(config, &mut self.parsed)
            .map_err(|e| Failure::Git(format!("cannot read the config: {e}")))?;
        // By file and message only: an edit above a problem moves its line and list index, which
        // does not make it a new one.
        let unplaced = |d: &crate::config::Diagnostic| {
            let mut message = String::with_capacity(d.message.len());
            let mut in_index = false;
            for c in d.message.chars() {
                match c {
                    '[' => in_index = true,
                    ']' => in_index = false,
                    c if in_index && c.is_ascii_digit() => continue,
                    _ => {}
                }
                message.push(c);
            }
            format!("{}: {message}", d.file)
        };
        Ok(validated.diagnostics().iter().map(unplaced).collect())
    }

    /// Whether `later` is `commit` or comes after it (fetching the tracked branch if `later` is not
    /// known here yet).
    pub fn descends(&mut self, later: &str, commit: &str) -> Result<bool, Failure> {
        let (later, commit) = (git2::Oid::from_str(later).map_err(git)?, git2::Oid::from_str(commit).map_err(git)?);
        if later == commit {
            return Ok(true);
        }
        let repo = match &self.place {
            Place::Remote { remote, clone } => {
                let (remote, clone) = (remote.clone(), clone.clone());
                let repo = open_clone(&clone).map_err(git)?;
                if repo.find_commit(later).is_err() {
                    let branch = self.tracked_branch(&repo, &remote)?;
                    fetch(&repo, &remote, &branch)?;
                }
                repo
            }
            Place::WorkTree { dir } => git2::Repository::discover(dir).map_err(git)?,
            Place::NotARepository { .. } => return Ok(false),
        };
        Ok(repo.graph_descendant_of(later, commit).unwrap_or(false))
    }

    /// Whether the tracked branch holds `commit` now (merged, or pushed directly).
    pub fn merged(&mut self, commit: &str) -> Result<bool, Failure> {
        let id = git2::Oid::from_str(commit).map_err(git)?;
        let (repo, head) = match &self.place {
            Place::Remote { remote, clone } => {
                let (remote, clone) = (remote.clone(), clone.clone());
                let repo = open_clone(&clone).map_err(git)?;
                let branch = self.tracked_branch(&repo, &remote)?;
                let head = fetch(&repo, &remote, &branch)?.id();
                (repo, head)
            }
            Place::WorkTree { dir } => {
                let repo = git2::Repository::discover(dir).map_err(git)?;
                let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(git)?.id();
                (repo, head)
            }
            Place::NotARepository { .. } => return Ok(false),
        };
        Ok(head == id || repo.graph_descendant_of(head, id).unwrap_or(false))
    }

    /// The file as the tracked branch has it now, for telling whether a proposal still applies.
    pub fn current(&mut self, file: &str) -> Result<String, Failure> {
        match &self.place {
            Place::Remote { remote, clone } => {
                let (remote, clone) = (remote.clone(), clone.clone());
                let repo = open_clone(&clone).map_err(git)?;
                let branch = self.tracked_branch(&repo, &remote)?;
                fetch(&repo, &remote, &branch)?;
                let config = config_dir(&repo, remote.path.as_deref())?;
                std::fs::read_to_string(config.join(file)).map_err(|e| Failure::Conflict(format!("{file}: {e}")))
            }
            Place::WorkTree { dir } | Place::NotARepository { dir } => {
                std::fs::read_to_string(dir.join(file)).map_err(|e| Failure::Conflict(format!("{file}: {e}")))
            }
        }
    }

    /// Deletes a proposal's branch from the remote (withdrawn); a branch already gone is fine.
    pub fn delete_branch(&mut self, name: &str) -> Result<(), Failure> {
        let Place::Remote { remote, clone } = &self.place else { return Ok(()) };
        let repo = open_clone(clone).map_err(git)?;
        match push(&repo, remote, &format!(":refs/heads/{name}")) {
            Ok(()) => Ok(()),
            Err(Pushed::Refused(m) | Pushed::Behind(m) | Pushed::Failed(m)) => Err(Failure::Rejected(m)),
        }
    }

    /// `refs/heads/<name>` of the branch the reconciler tracks: `--ref`, else the remote's HEAD.
    fn tracked_branch(&mut self, repo: &git2::Repository, remote: &GitRemote) -> Result<String, Failure> {
        if let Some(branch) = &self.branch {
            return Ok(branch.clone());
        }
        let branch = match remote.reference.as_deref() {
            Some(r) if r.starts_with("refs/heads/") => r.to_owned(),
            Some(r) if r.starts_with("refs/") || r == "HEAD" => {
                return Err(Failure::Unavailable(format!(
                    "the reconciler tracks `{r}`, which is not a branch; write-back needs a branch (--ref main)"
                )));
            }
            Some(r) => format!("refs/heads/{r}"),
            None => {
                let mut connection = repo.remote_anonymous(&remote.url).map_err(git)?;
                let callbacks = remote.credentials.callbacks();
                connection.connect_auth(git2::Direction::Fetch, Some(callbacks), None).map_err(git)?;
                let name = connection.default_branch().map_err(git)?;
                name.as_str().unwrap_or("refs/heads/main").to_owned()
            }
        };
        self.branch = Some(branch.clone());
        Ok(branch)
    }
}

fn open_clone(clone: &Path) -> Result<git2::Repository, git2::Error> {
    match git2::Repository::open(clone) {
        Ok(repo) => Ok(repo),
        Err(_) => {
            std::fs::create_dir_all(clone).map_err(|e| git2::Error::from_str(&e.to_string()))?;
            git2::Repository::init(clone)
        }
    }
}

/// Fetches `branch` and checks its head out (detached) in the clone.
fn fetch<'r>(repo: &'r git2::Repository, remote: &GitRemote, branch: &str) -> Result<git2::Commit<'r>, Failure> {
    let failed = |e: git2::Error| Failure::Git(format!("cannot fetch {}: {}", redact(&remote.url), e.message()));
    let mut connection = repo.remote_anonymous(&remote.url).map_err(failed)?;
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(remote.credentials.callbacks()).download_tags(git2::AutotagOption::None);
    connection.fetch(&[format!("+{branch}:{BASE}").as_str()], Some(&mut options), None).map_err(failed)?;
    let head = repo.find_reference(BASE).and_then(|r| r.peel_to_commit()).map_err(failed)?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.force().remove_untracked(true);
    repo.checkout_tree(head.as_object(), Some(&mut checkout)).map_err(failed)?;
    repo.set_head_detached(head.id()).map_err(failed)?;
    Ok(head)
}

fn config_dir(repo: &git2::Repository, path: Option<&Path>) -> Result<PathBuf, Failure> {
    let root = repo.workdir().ok_or_else(|| Failure::Git("the write-back clone has no work tree".into()))?;
    Ok(path.map_or_else(|| root.to_owned(), |p| root.join(p)))
}

fn relative_to_work_tree(repo: &git2::Repository, path: &Path) -> Result<PathBuf, Failure> {
    let root = repo.workdir().and_then(|w| w.canonicalize().ok());
    let file = path.canonicalize().map_err(|e| Failure::Git(format!("{}: {e}", path.display())))?;
    root.and_then(|r| file.strip_prefix(r).ok().map(Path::to_owned))
        .ok_or_else(|| Failure::Unavailable(format!("{} is outside the repository's work tree", path.display())))
}

/// `head`'s tree with the blob at `relative` replaced by `content`.
fn tree_with<'r>(
    repo: &'r git2::Repository,
    head: &git2::Commit,
    relative: &Path,
    content: &[u8],
) -> Result<git2::Tree<'r>, git2::Error> {
    let mut index = git2::Index::new()?;
    index.read_tree(&head.tree()?)?;
    let mut entry =
        index.get_path(relative, 0).ok_or_else(|| git2::Error::from_str("the file is not in the commit"))?;
    entry.file_size = u32::try_from(content.len()).unwrap_or(u32::MAX);
    entry.id = repo.blob(content)?;
    index.add(&entry)?;
    let id = index.write_tree_to(repo)?;
    repo.find_tree(id)
}

/// Pushes `commit` to `target`, which must still be at `base` (`None`: must not exist yet). A
/// local remote (a path or `file://`) is written by libgit2 without the check a git server makes,
/// so there the objects go to a ref of their own and the target moves by compare-and-swap.
fn push_to(
    repo: &git2::Repository,
    remote: &GitRemote,
    commit: &str,
    target: &str,
    base: Option<git2::Oid>,
) -> Result<(), Pushed> {
    let Some(path) = local_path(&remote.url) else { return push(repo, remote, &format!("{commit}:{target}")) };
    let incoming = format!("refs/gatehouse/incoming/{commit}");
    push(repo, remote, &format!("{commit}:{incoming}"))?;
    let failed = |e: git2::Error| Pushed::Failed(format!("cannot update {}: {}", redact(&remote.url), e.message()));
    let far = git2::Repository::open(path).map_err(failed)?;
    let id = git2::Oid::from_str(commit).map_err(failed)?;
    let moved = match base {
        Some(base) => far.reference_matching(target, id, true, base, "gatehouse write-back"),
        None => far.reference(target, id, false, "gatehouse write-back"),
    };
    if let Ok(mut reference) = far.find_reference(&incoming) {
        let _ = reference.delete();
    }
    match moved {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code(), git2::ErrorCode::Modified | git2::ErrorCode::Exists) => {
            Err(Pushed::Behind(e.message().to_owned()))
        }
        Err(e) => Err(failed(e)),
    }
}

/// The directory of a remote on this machine: a `file://` URL or a plain path.
fn local_path(url: &str) -> Option<&str> {
    match url.strip_prefix("file://") {
        Some(path) => Some(path),
        None if !url.contains("://") && Path::new(url).is_dir() => Some(url),
        None => None,
    }
}

enum Pushed {
    /// The remote moved on: fetch and redo.
    Behind(String),
    /// The remote refused the ref (a protected branch, a hook).
    Refused(String),
    Failed(String),
}

/// Pushes `refspec`, never forced; what the remote said on a refusal is kept for the answer.
fn push(repo: &git2::Repository, remote: &GitRemote, refspec: &str) -> Result<(), Pushed> {
    let mut connection = repo.remote_anonymous(&remote.url).map_err(|e| Pushed::Failed(e.message().to_owned()))?;
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let said: Arc<Mutex<String>> = Arc::default();
    let mut callbacks = remote.credentials.callbacks();
    let on_ref = Arc::clone(&refused);
    callbacks.push_update_reference(move |_name, status| {
        if let Some(status) = status {
            *on_ref.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status.to_owned());
        }
        Ok(())
    });
    let on_side = Arc::clone(&said);
    callbacks.sideband_progress(move |data| {
        on_side.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_str(&String::from_utf8_lossy(data));
        true
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    let result = connection.push(&[refspec], Some(&mut options));
    drop(options);
    let said = said.lock().unwrap_or_else(std::sync::PoisonError::into_inner).trim().to_owned();
    let with_said = |status: &str| if said.is_empty() { status.to_owned() } else { format!("{status}: {said}") };
    match result {
        Err(e) if e.code() == git2::ErrorCode::NotFastForward => Err(Pushed::Behind(e.message().to_owned())),
        Err(e) => Err(Pushed::Failed(format!("cannot push to {}: {}", redact(&remote.url), with_said(e.message())))),
        Ok(()) => match refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            None => Ok(()),
            // How git servers say the ref moved since the push began.
            Some(status)
                if ["fast-forward", "fetch first", "failed to update ref", "incorrect old value", "stale info"]
                    .iter()
                    .any(|m| status.contains(m)) =>
            {
                Err(Pushed::Behind(status))
            }
            Some(status) => {
                Err(Pushed::Refused(format!("{} refused the push: {}", redact(&remote.url), with_said(&status))))
            }
        },
    }
}
