//! The cluster file: the same TOML on every node.
//!
//! ```toml
//! shards = 2
//! [[nodes]]
//! id = 1
//! http = "10.201.0.1:8080"
//! raft = "10.201.0.1:9080"
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::limits::CLUSTER_NODES;
use crate::types::{Node, NodeId};

/// A parsed and checked cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFile {
    /// Shards, fixed at the cluster's creation.
    pub shards: u16,
    /// Every node, in id order.
    pub nodes: Vec<(NodeId, Node)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    shards: u64,
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: u64,
    http: String,
    raft: String,
}

/// What is wrong with a cluster file, in words.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// The file cannot be read.
    #[error("cannot read the cluster file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the TOML expected.
    #[error("the cluster file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl ClusterFile {
    /// Reads and checks the file.
    pub fn load(path: &Path, shards_max: u16) -> Result<Self, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, shards_max).map_err(|message| ClusterFileError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks the file's text.
    pub fn parse(text: &str, shards_max: u16) -> Result<Self, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.to_string())?;
        if raw.shards == 0 || raw.shards > u64::from(shards_max) {
            return Err(format!(
                "shards must be 1 to {shards_max}, not {}",
                raw.shards
            ));
        }
        if raw.nodes.len() != CLUSTER_NODES {
            return Err(format!(
                "nodes must list exactly {CLUSTER_NODES} nodes, not {}",
                raw.nodes.len()
            ));
        }
        let mut ids = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        let mut nodes = Vec::new();
        for node in raw.nodes {
            if node.id == 0 {
                return Err("nodes.id must be at least 1".into());
            }
            if !ids.insert(node.id) {
                return Err(format!("nodes.id {} is listed twice", node.id));
            }
            for (field, addr) in [("http", &node.http), ("raft", &node.raft)] {
                addr.parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "nodes.{field} of node {} must be an ip:port address, not {addr:?}",
                        node.id
                    )
                })?;
                if !addresses.insert(addr.clone()) {
                    return Err(format!("the address {addr} is listed twice"));
                }
            }
            nodes.push((
                node.id,
                Node {
                    http: node.http,
                    raft: node.raft,
                },
            ));
        }
        nodes.sort_by_key(|(id, _)| *id);
        Ok(ClusterFile {
            shards: raw.shards as u16,
            nodes,
        })
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, node)| node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
shards = 2
[[nodes]]
id = 1
http = "10.201.0.1:8080"
raft = "10.201.0.1:9080"
[[nodes]]
id = 2
http = "10.201.0.2:8080"
raft = "10.201.0.2:9080"
[[nodes]]
id = 3
http = "10.201.0.3:8080"
raft = "10.201.0.3:9080"
"#;

    #[test]
    fn the_contracts_file_parses_and_mistakes_are_named() {
        let file = ClusterFile::parse(GOOD, 64).unwrap();
        assert_eq!(file.shards, 2);
        assert_eq!(file.node(2).unwrap().raft, "10.201.0.2:9080");
        let cases = [
            (GOOD.replace("shards = 2", "shards = 0"), "shards must be"),
            (GOOD.replace("id = 3", "id = 2"), "listed twice"),
            (
                GOOD.replace("10.201.0.3:9080", "nowhere"),
                "nodes.raft of node 3",
            ),
            (
                GOOD.replace("id = 3\n", "id = 3\nport = 1\n"),
                "unknown field",
            ),
        ];
        for (text, needle) in cases {
            let err = ClusterFile::parse(&text, 64).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let two = GOOD
            .split("[[nodes]]")
            .take(3)
            .collect::<Vec<_>>()
            .join("[[nodes]]");
        assert!(ClusterFile::parse(&two, 64)
            .unwrap_err()
            .contains("exactly 3"));
    }
}
