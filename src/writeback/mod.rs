//! Git write-back (issue 24): an interactive change of something a Git-owned tenant declares
//! becomes a commit of the file that declares it, by the person who asked, instead of drift.
//!
//! `edit` is the change of the YAML text (pure); `repo` makes the commit where the config comes
//! from. This is the service the API shares: one write-back at a time per replica (replicas race
//! through the remote, which takes one push at a time; the loser redoes its edit on the new head).

pub mod edit;
pub mod repo;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use edit::Edit;
pub use repo::{Authored, Destination, Failure, Written};

use crate::source::Source;

/// `serve`'s write-back settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The committer of every write-back commit (name, email); the author is who asked.
    pub committer: (String, String),
    /// How long an answer waits for the reconciler to apply a direct commit.
    pub wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { committer: ("Gatehouse".into(), "gatehouse@localhost".into()), wait: Duration::from_secs(10) }
    }
}

pub struct WriteBack {
    workspace: Arc<Mutex<repo::Workspace>>,
    /// How long an answer waits for the reconciler to apply a direct commit.
    pub wait: Duration,
}

impl WriteBack {
    /// Commits made to where `source` reads the config.
    pub fn new(source: &Source, settings: Settings) -> WriteBack {
        let workspace = repo::Workspace::new(source, settings.committer);
        WriteBack { workspace: Arc::new(Mutex::new(workspace)), wait: settings.wait }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut repo::Workspace) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let workspace = Arc::clone(&self.workspace);
        tokio::task::spawn_blocking(move || {
            let mut workspace = workspace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut workspace)
        })
        .await
        .map_err(|e| Failure::Git(format!("the write-back task failed: {e}")))?
    }

    /// Makes `edit` of `file` and commits it to `destination` (see `repo::Workspace::write`).
    pub async fn write(
        &self,
        file: String,
        edits: Vec<Edit>,
        authored: Authored,
        destination: Destination,
    ) -> Result<Written, Failure> {
        self.blocking(move |w| w.write(&file, &edits, &authored, &destination)).await
    }

    /// Whether commit `later` is `commit` or comes after it.
    pub async fn descends(&self, later: String, commit: String) -> Result<bool, Failure> {
        self.blocking(move |w| w.descends(&later, &commit)).await
    }

    /// Whether the tracked branch holds `commit`.
    pub async fn merged(&self, commit: String) -> Result<bool, Failure> {
        self.blocking(move |w| w.merged(&commit)).await
    }

    /// `file` as the tracked branch has it now.
    pub async fn current(&self, file: String) -> Result<String, Failure> {
        self.blocking(move |w| w.current(&file)).await
    }

    /// Deletes branch `name` from the remote.
    pub async fn delete_branch(&self, name: String) -> Result<(), Failure> {
        self.blocking(move |w| w.delete_branch(&name)).await
    }
}
