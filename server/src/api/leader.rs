//! Whether this node leads a shard, asked by the shard client before it queues a command:
//! in cluster mode a command for a shard led elsewhere is not run here but forwarded by
//! [`super::cluster::forward`], which reads the leader's address noted here.

use std::sync::Arc;

use parking_lot::Mutex;
use raft::ClusterNode;

use super::error::ApiError;

tokio::task_local! {
    /// The API address of the node this request must be forwarded to, once known.
    pub(super) static FORWARD_TO: Arc<Mutex<Option<(u64, String)>>>;
}

/// `Ok` when this node leads `shard` and serves it itself; otherwise the 503 to answer if
/// the request cannot be forwarded (the leader's address is noted for [`super::cluster::forward`]).
pub fn route(node: &ClusterNode, shard: usize) -> Result<(), ApiError> {
    let lead = node.group(shard).leadership();
    if lead.is_me {
        return Ok(());
    }
    match lead
        .leader
        .and_then(|id| node.file().node(id).map(|n| (id, n.http.clone())))
    {
        Some((id, http)) => {
            let _ = FORWARD_TO.try_with(|slot| *slot.lock() = Some((id, http)));
            Err(ApiError::unavailable(format!(
                "node {id} leads shard {shard} and cannot be reached from here; retry"
            )))
        }
        None => Err(ApiError::unavailable(format!(
            "shard {shard} has no leader (an election is under way); retry shortly"
        ))),
    }
}
