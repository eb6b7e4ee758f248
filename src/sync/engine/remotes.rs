//! Building the configured remotes for a workspace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sync::config::{RemoteConfig, RemotesConfig};
use crate::sync::drive::{DriveRemote, DriveSettings};
use crate::sync::local::{LocalOptions, LocalRemote};
use crate::sync::remote::Remote;

/// What the remotes of a workspace are bound to: the workspace (its id, for the local
/// remotes' identity markers) and the folders a copy must not share a filesystem with.
#[derive(Debug, Clone, Default)]
pub struct RemoteEnv {
    pub workspace: PathBuf,
    /// The workspace and each checkpoint root.
    pub protected: Vec<PathBuf>,
    /// Hash every stored copy again instead of trusting remembered checksums
    /// (`sync --verify`).
    pub rehash: bool,
}

impl RemoteEnv {
    /// A workspace whose checkpoints live inside it.
    pub fn new(workspace: &Path) -> Self {
        Self { workspace: workspace.to_path_buf(), protected: vec![workspace.to_path_buf()], rehash: false }
    }

    /// A workspace and its configured checkpoint roots (those that exist).
    pub fn with_roots(workspace: &Path, checkpoint_roots: &[String]) -> Self {
        let mut env = Self::new(workspace);
        let (roots, _) = crate::checkpoints::roots::expand_roots(workspace, checkpoint_roots);
        env.protected.extend(roots.into_iter().map(|r| r.path));
        env
    }
}

/// Build the remotes named in the config for a workspace whose checkpoints live inside it.
pub fn build_remotes(remotes: &RemotesConfig, workspace: &Path) -> BTreeMap<String, Arc<dyn Remote>> {
    build_remotes_in(remotes, &RemoteEnv::new(workspace))
}

/// Build the remotes named in the config, bound to the workspace in `env`.
pub fn build_remotes_in(remotes: &RemotesConfig, env: &RemoteEnv) -> BTreeMap<String, Arc<dyn Remote>> {
    // Without an id (an unwritable workspace) no marker matches: nothing is stored.
    let ws_id = crate::sync::marker::workspace_id(&env.workspace).unwrap_or_default();
    remotes
        .iter()
        .map(|(name, cfg)| {
            let remote: Arc<dyn Remote> = match cfg {
                RemoteConfig::Local { path, same_disk } => {
                    let root = crate::sync::config::local_root(path, &env.workspace);
                    let opts = LocalOptions {
                        workspace_id: Some(ws_id.clone()),
                        workspace: Some(env.workspace.clone()),
                        same_disk: *same_disk,
                        protected: env.protected.clone(),
                        sums: Some(crate::sync::sums::SumCache::new(crate::sync::sums::sums_path(&env.workspace))),
                        rehash: env.rehash,
                    };
                    Arc::new(LocalRemote::with_options(name.clone(), root, opts))
                }
                RemoteConfig::Drive { folder_id, key_file, scope, chunk_mib, endpoint, subject } => {
                    let s =
                        DriveSettings::new(folder_id, key_file.as_deref(), scope, *chunk_mib, endpoint, &env.workspace)
                            .acting_as(subject.as_deref());
                    Arc::new(DriveRemote::new(name.clone(), s))
                }
                RemoteConfig::Hf { repo_id, private, allow_public, revision, path_prefix, endpoint } => {
                    let settings = crate::sync::hf::HfSettings {
                        repo_id: repo_id.clone(),
                        private: *private,
                        allow_public: *allow_public,
                        revision: revision.clone(),
                        path_prefix: path_prefix.clone(),
                        endpoint: endpoint.clone(),
                    };
                    Arc::new(crate::sync::hf::HfRemote::new(name.clone(), settings))
                }
            };
            (name.clone(), remote)
        })
        .collect()
}

/// Why a remote's folder may not be used for this workspace (it is the workspace, inside
/// it, or holds it), if so.
pub(super) fn remote_root_around(remote: &dyn Remote, workspace: &Path) -> Option<String> {
    let path = remote.local_root()?;
    let mut r = RemotesConfig::new();
    r.insert(remote.name().to_string(), RemoteConfig::Local { path: path.to_path_buf(), same_disk: false });
    crate::sync::config::validate_places(&r, workspace, &[]).into_iter().next().map(|(_, why)| why)
}
