//! The disposition draft, kept on disk from the first keystroke until the switchboard says
//! `disposition_saved`, so a crash, a restart or a lost connection loses nothing the agent
//! typed or submitted.
//!
//! One JSON file per call: `$XDG_DATA_HOME/sapa/drafts/<user>/<call_id>.json`, written
//! atomically (temp file + rename). A draft the agent submitted also holds the exact form that
//! was sent; on start and on every reconnect the engine sends those again, once per
//! connection (the switchboard stores a disposition once per `request_id`), and deletes the
//! file when the switchboard acknowledges it. Drafts never submitted come back on screen as the
//! wrap-up form.

use std::path::{Path, PathBuf};

use sapa_ui::DispositionDraft;
use serde::{Deserialize, Serialize};

use crate::protocol::Resolution;

/// Who the draft is about, so a restored wrap-up form can say which call it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftCall {
    pub number: String,
    pub name: Option<String>,
    pub queue: String,
    pub talk_ms: u64,
}

/// The form exactly as submitted, ready to send again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedForm {
    pub code: String,
    pub resolution: Resolution,
    pub notes: String,
    pub follow_up_at_ms: Option<i64>,
}

/// One call's draft on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDraft {
    pub call_id: String,
    /// The idempotency key sent with every submission of this call's disposition.
    pub request_id: String,
    pub call: DraftCall,
    /// What the form shows, exactly as typed.
    pub draft: DispositionDraft,
    /// Set once the agent pressed Submit; cleared never (the file is deleted on the ack).
    pub submitted: Option<SubmittedForm>,
    /// When it was last written, ms since the Unix epoch (the newest comes back first).
    pub saved_at_ms: i64,
}

/// The request id of a user's disposition for a call: the same on every retry.
pub fn request_id(user: &str, call_id: &str) -> String {
    format!("{user}-{call_id}")
}

/// The drafts of one user.
#[derive(Debug, Clone)]
pub struct DraftStore {
    dir: PathBuf,
}

impl DraftStore {
    /// `$XDG_DATA_HOME/sapa/drafts` (or `~/.local/share/sapa/drafts`).
    pub fn default_root() -> Option<PathBuf> {
        directories::BaseDirs::new().map(|dirs| dirs.data_dir().join("sapa").join("drafts"))
    }

    /// The store for `user` under `root`.
    pub fn for_user(root: &Path, user: &str) -> DraftStore {
        DraftStore {
            dir: root.join(file_safe(user)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, call_id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_safe(call_id)))
    }

    /// Writes (replaces) a call's draft atomically.
    pub fn save(&self, draft: &StoredDraft) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(draft).map_err(std::io::Error::other)?;
        super::config::write_atomically(&self.path(&draft.call_id), &bytes)
    }

    pub fn load(&self, call_id: &str) -> Option<StoredDraft> {
        let bytes = std::fs::read(self.path(call_id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every readable draft, newest first. Unreadable files are left alone (and logged): they
    /// may be a newer version's, and deleting what an agent wrote is never our call.
    pub fn all(&self) -> Vec<StoredDraft> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut drafts: Vec<StoredDraft> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let bytes = std::fs::read(e.path()).ok()?;
                match serde_json::from_slice(&bytes) {
                    Ok(d) => Some(d),
                    Err(err) => {
                        tracing::warn!("unreadable draft {}: {err}", e.path().display());
                        None
                    }
                }
            })
            .collect();
        drafts.sort_by_key(|d: &StoredDraft| std::cmp::Reverse(d.saved_at_ms));
        drafts
    }

    /// Deletes a call's draft; a draft already gone is fine.
    pub fn remove(&self, call_id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(call_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Letters, digits, `-` and `_` stay; anything else becomes `_xx` (its bytes in hex), so no
/// id can name a path outside the store.
fn file_safe(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.is_empty() { "_".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(call_id: &str, at: i64, submitted: bool) -> StoredDraft {
        StoredDraft {
            call_id: call_id.into(),
            request_id: request_id("ana", call_id),
            call: DraftCall {
                number: "+15550100".into(),
                name: Some("Budi".into()),
                queue: "support".into(),
                talk_ms: 61_000,
            },
            draft: DispositionDraft {
                call_id: call_id.into(),
                code: Some("billing".into()),
                resolution: None,
                notes: "Refund promised".into(),
                follow_up_text: String::new(),
            },
            submitted: submitted.then(|| SubmittedForm {
                code: "billing".into(),
                resolution: Resolution::Resolved,
                notes: "Refund promised".into(),
                follow_up_at_ms: None,
            }),
            saved_at_ms: at,
        }
    }

    #[test]
    fn drafts_survive_a_new_store_and_list_newest_first() {
        let root = tempfile::tempdir().unwrap();
        let store = DraftStore::for_user(root.path(), "ana");
        store.save(&draft("c1", 10, false)).unwrap();
        store.save(&draft("c2", 20, true)).unwrap();
        // A new process opens the same directory.
        let reopened = DraftStore::for_user(root.path(), "ana");
        let all = reopened.all();
        assert_eq!(
            all.iter().map(|d| d.call_id.as_str()).collect::<Vec<_>>(),
            ["c2", "c1"]
        );
        assert_eq!(reopened.load("c1").unwrap(), draft("c1", 10, false));
        reopened.remove("c2").unwrap();
        reopened.remove("c2").unwrap();
        assert_eq!(reopened.all().len(), 1);
        // Another user's drafts are apart.
        assert!(DraftStore::for_user(root.path(), "kofi").all().is_empty());
        // No temp files are left behind.
        let names: Vec<String> = std::fs::read_dir(reopened.dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c1.json"]);
    }

    #[test]
    fn ids_cannot_escape_the_directory() {
        assert_eq!(file_safe("../x"), "_2e_2e_2fx");
        assert_eq!(file_safe("c18c-2f"), "c18c-2f");
        assert_eq!(file_safe(""), "_");
    }
}
