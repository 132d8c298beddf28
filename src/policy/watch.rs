//! Keeps the policy current: the folder is watched (editors save by rename, so the folder,
//! not the file) and reloaded; an invalid change is refused and the last good policy stays.

use super::Policy;
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The policy in force, swapped atomically on reload; a message in flight keeps the one it
/// started with.
#[derive(Clone)]
pub struct PolicyHandle {
    current: Arc<RwLock<Arc<Policy>>>,
    dir: PathBuf,
    /// `[policy] allow_empty_policy`: without it a change that leaves no rules is refused.
    allow_empty: bool,
}

impl PolicyHandle {
    pub fn new(dir: &Path, policy: Policy, allow_empty: bool) -> Self {
        PolicyHandle {
            current: Arc::new(RwLock::new(Arc::new(policy))),
            dir: dir.to_path_buf(),
            allow_empty,
        }
    }

    pub fn get(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the folder again; on error (or no rules left) the policy in force stays.
    pub fn reload(&self) -> Result<(), super::PolicyError> {
        let p = Policy::load_checked(&self.dir, self.allow_empty)?;
        tracing::info!(
            dir = %self.dir.display(),
            rules = p.rules.len(),
            detectors = p.detectors.len(),
            "policy loaded"
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
        Ok(())
    }

    /// Watches the folder on a thread of its own for as long as the process runs. The folder
    /// must exist (it is never created: an empty one would mean a gateway without rules).
    pub fn watch(&self) -> notify::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // Only changes count: reading the files (as a reload does) reports access events,
            // which would otherwise reload in a loop.
            if let Ok(ev) = ev
                && matches!(
                    ev.kind,
                    EventKind::Create(_)
                        | EventKind::Remove(_)
                        | EventKind::Modify(
                            ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
                        )
                )
            {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&self.dir, RecursiveMode::Recursive)?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("policy-watch".into())
            .spawn(move || {
                let _keep = watcher;
                while rx.recv().is_ok() {
                    // An editor's save is several events: settle, then load once.
                    std::thread::sleep(Duration::from_millis(200));
                    while rx.try_recv().is_ok() {}
                    if let Err(e) = me.reload() {
                        tracing::error!(error = %e, "policy change refused; the previous policy stays in force");
                    }
                }
            })
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_to_no_rules_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let rule = "[detectors.w]\ntype = \"words\"\nwords = [\"walvis\"]\n\n\
                    [[rules]]\nname = \"r\"\ndetectors = [\"w\"]\naction = \"notify\"\n";
        std::fs::write(dir.path().join("a.toml"), rule).unwrap();
        for allow in [false, true] {
            let p = Policy::load_checked(dir.path(), allow).unwrap();
            let h = PolicyHandle::new(dir.path(), p, allow);
            std::fs::write(dir.path().join("a.toml"), "[settings]\nexpiry = \"1d\"\n").unwrap();
            assert_eq!(h.reload().is_err(), !allow);
            assert_eq!(h.get().rules.len(), usize::from(!allow));
            std::fs::write(dir.path().join("a.toml"), rule).unwrap();
        }
    }
}
