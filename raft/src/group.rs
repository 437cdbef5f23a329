//! One shard's Raft group as the server sees it: who leads, propose a batch, a read
//! barrier, the committed state. No openraft type leaves this module.

use std::time::Duration;

use openraft::errors::ClientWriteError;
use openraft::impls::ProgressResponder;
use openraft::type_config::alias::CommittedLeaderIdOf;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::vote::RaftLeaderId;
use openraft::ReadPolicy;

use crate::limits::{LEADER_READY_WAIT, QUORUM_WAIT};
use crate::state_machine::StateMachine;
use crate::types::{Batch, NodeId, TypeConfig};
use crate::Raft;

/// What a node knows of a group's leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The leader, if one is known (none during an election).
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// This node leads the group.
    pub is_me: bool,
    /// The log index applied on this node.
    pub applied: u64,
    /// The voters.
    pub replicas: Vec<NodeId>,
}

/// Proof that this node led the group in one term, from the moment its engine equalled the
/// whole committed log: proposals made with it fail if leadership moved on.
#[derive(Clone)]
pub struct LeaderToken {
    term: u64,
    leader: CommittedLeaderIdOf<TypeConfig>,
}

impl LeaderToken {
    /// The term it is valid in.
    pub fn term(&self) -> u64 {
        self.term
    }
}

/// Why a proposal or a barrier did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead (or no longer leads) the group, and nothing was written.
    #[error("this node does not lead the shard")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// The batch may or may not commit (leadership moved after it was written, or the
    /// quorum did not answer in time).
    #[error("the outcome is unknown: {0}")]
    Unknown(String),
}

/// One shard's group on this node.
pub struct Group {
    shard: u16,
    id: NodeId,
    raft: Raft,
    sm: StateMachine,
}

impl Group {
    /// A group over a started Raft instance and its state machine (the node does this; tests
    /// build groups over their own networks).
    pub fn new(shard: u16, id: NodeId, raft: Raft, sm: StateMachine) -> Self {
        Group {
            shard,
            id,
            raft,
            sm,
        }
    }

    /// The shard.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// The committed state.
    pub fn state_machine(&self) -> &StateMachine {
        &self.sm
    }

    /// The group's Raft instance (for tests and the node).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// What this node knows of the group now (no I/O).
    pub fn leadership(&self) -> Leadership {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        Leadership {
            leader: m.current_leader,
            term: m.current_term,
            is_me: m.current_leader == Some(self.id),
            applied: m.last_applied.as_ref().map_or(0, |id| id.index),
            replicas: m.membership_config.membership().voter_ids().collect(),
        }
    }

    fn not_leader(&self) -> ProposeError {
        ProposeError::NotLeader {
            leader: self.leadership().leader.filter(|l| *l != self.id),
        }
    }

    /// Waits until this node leads and its committed engine holds its whole local log
    /// (the term's first entry applied), and returns the token to propose with.
    pub async fn begin_term(&self) -> Result<LeaderToken, ProposeError> {
        let leader = self.raft.as_leader().map_err(|f| ProposeError::NotLeader {
            leader: f.leader_id.filter(|l| *l != self.id),
        })?;
        let token = LeaderToken {
            term: leader.leader_id().term(),
            leader: leader.to_committed_leader_id(),
        };
        match tokio::time::timeout(
            LEADER_READY_WAIT,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(shard = self.shard, error = %e, "leadership not confirmed by a quorum");
                return Err(self.not_leader());
            }
            Err(_) => {
                tracing::warn!(
                    shard = self.shard,
                    "no quorum confirmed the leadership in time"
                );
                return Err(self.not_leader());
            }
        }
        let last_log = self.raft.metrics().borrow_watched().last_log_index;
        if let Err(e) = self
            .raft
            .wait(Some(LEADER_READY_WAIT))
            .applied_index_at_least(last_log, "the term's first entry applied")
            .await
        {
            tracing::warn!(shard = self.shard, ?last_log, error = %e, "the local log was not applied in time");
            return Err(self.not_leader());
        }
        let now = self.leadership();
        if !now.is_me || now.term != token.term {
            return Err(self.not_leader());
        }
        Ok(token)
    }

    /// Replicates one batch of encoded decisions and waits until a quorum has it durable
    /// and this node has applied it. Returns the entry's log index.
    pub async fn propose(
        &self,
        token: &LeaderToken,
        decisions: Vec<Vec<u8>>,
    ) -> Result<u64, ProposeError> {
        self.submit(token, decisions).await?.outcome().await
    }

    /// Hands one batch to the group, in order: batches submitted one after the other are
    /// appended in that order. Returns once the group has it (not once it is committed);
    /// [`Pending::outcome`] then waits for the commit. Several may be pending at once.
    pub async fn submit(
        &self,
        token: &LeaderToken,
        decisions: Vec<Vec<u8>>,
    ) -> Result<Pending, ProposeError> {
        let (responder, appended, done) = ProgressResponder::<TypeConfig, _>::new();
        self.raft
            .write(Batch { decisions })
            .with_leader(token.leader)
            .responder(responder)
            .await
            .map_err(|e| ProposeError::Unknown(format!("the group stopped: {e}")))?;
        Ok(Pending {
            id: self.id,
            appended,
            done,
        })
    }

    /// A read barrier: returns once a quorum round that began after the call confirmed this
    /// node's leadership in `token`'s term and everything committed before is applied.
    pub async fn read_barrier(&self, token: &LeaderToken) -> Result<(), ProposeError> {
        let res = tokio::time::timeout(
            QUORUM_WAIT,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await;
        match res {
            Ok(Ok(_)) if self.leadership().term == token.term => Ok(()),
            Ok(Ok(_)) => Err(self.not_leader()),
            Ok(Err(e)) => {
                tracing::debug!(shard = self.shard, error = %e, "read barrier refused");
                Err(self.not_leader())
            }
            Err(_) => {
                tracing::debug!(shard = self.shard, "read barrier timed out");
                Err(self.not_leader())
            }
        }
    }
}

type Receiver<T> = openraft::type_config::alias::OneshotReceiverOf<TypeConfig, T>;

/// A batch handed to the group, not yet known to be committed.
pub struct Pending {
    id: NodeId,
    appended: Receiver<openraft::type_config::alias::LogIdOf<TypeConfig>>,
    done: Receiver<openraft::raft::ClientWriteResult<TypeConfig>>,
}

impl Pending {
    /// Waits until the batch is committed on a quorum and applied on this node (its log
    /// index), or fails: [`ProposeError::NotLeader`] if it was never written,
    /// [`ProposeError::Unknown`] if it was and may still commit.
    pub async fn outcome(self) -> Result<u64, ProposeError> {
        let Pending { id, appended, done } = self;
        let outcome = tokio::time::timeout(QUORUM_WAIT, done).await;
        let was_appended = || async {
            matches!(
                tokio::time::timeout(Duration::from_millis(1), appended).await,
                Ok(Ok(_))
            )
        };
        match outcome {
            Ok(Ok(Ok(response))) => Ok(response.log_id.index),
            Ok(Ok(Err(ClientWriteError::ForwardToLeader(forward)))) => {
                if was_appended().await {
                    Err(ProposeError::Unknown(
                        "leadership moved after the batch was written".into(),
                    ))
                } else {
                    Err(ProposeError::NotLeader {
                        leader: forward.leader_id.filter(|l| *l != id),
                    })
                }
            }
            Ok(Ok(Err(other))) => Err(ProposeError::Unknown(other.to_string())),
            Ok(Err(_)) => Err(ProposeError::Unknown(
                "the group dropped the proposal".into(),
            )),
            Err(_) => Err(ProposeError::Unknown(format!(
                "no quorum within {} s",
                QUORUM_WAIT.as_secs()
            ))),
        }
    }
}
