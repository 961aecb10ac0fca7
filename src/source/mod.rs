//! Stage 1 of the pipeline: where the config comes from. For now, a local directory, which may be a
//! git work tree whose commit is recorded with what is applied.

use std::path::Path;

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
