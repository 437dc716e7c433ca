//! Appends in batches: one task takes every append waiting, in the order
//! they were submitted, and sends them to Redis together.
//!
//! Order: one connection runs a pipeline's commands in order, and a batch
//! is sent only once the one before it is answered, so a sender's messages
//! are numbered in the order sent (on a cluster, a user's inbox is one
//! node, and its scripts one pipeline). Cost: a busy gateway makes a few
//! round trips per batch (claim the retries, append, record the retries),
//! not per message.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::try_join_all;
use redis::{Cmd, FromRedisValue, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Link, Redis, failed};
use crate::clock::{new_epoch, now_ms};
use crate::entry::OwnedAppend;
use crate::{Append, Appended, InboxError, Offset};

/// At most this many appends go in one batch.
const MOST_PER_BATCH: usize = 256;

/// At most this many inbox entries go in one batch (at least one append's):
/// a message to a huge group delays what waits behind it (another user's
/// one-to-one message) by one bounded batch, not by its whole backlog.
const MOST_ENTRIES_PER_BATCH: usize = 4096;

/// One append waiting for its batch.
pub(crate) struct Job {
    pub(crate) users: Vec<Arc<str>>,
    pub(crate) append: OwnedAppend,
    pub(crate) reply: oneshot::Sender<Result<Appended, InboxError>>,
}

/// What the scripts of one batch share: when it was stored, the retention
/// cut-off, and the epoch an inbox created now gets.
pub(crate) struct Stamp {
    pub(crate) at_ms: u64,
    pub(crate) cutoff_ms: u64,
    pub(crate) epoch: Arc<str>,
}

/// What a retried send's key said.
pub(crate) enum Claim {
    /// This send took the key: it is the original.
    Ours,
    /// The original was stored: this send is a duplicate.
    Original(Appended),
    /// The original is still being stored (elsewhere).
    InFlight,
}

impl Claim {
    /// From the answers to [`Redis::claim_cmds`]: `SET key pending NX`,
    /// and the key's value after it.
    pub(crate) fn of(answers: &[Value]) -> Result<Claim, InboxError> {
        let [claimed, seen] = answers else {
            return Err(InboxError::unavailable("redis: a claim without its answer"));
        };
        let claimed: Option<String> = answer(claimed.clone())?;
        let seen: Option<String> = answer(seen.clone())?;
        if claimed.is_some() {
            return Ok(Claim::Ours);
        }
        match seen.as_deref().and_then(|v| v.split_once(':')) {
            Some((id, offset)) => {
                let message_id = id
                    .parse()
                    .map_err(|_| InboxError::unavailable("redis: a bad retry record"))?;
                let offset: Offset = offset.parse().unwrap_or(0);
                Ok(Claim::Original(Appended::Duplicate {
                    message_id,
                    sender_offset: (offset != 0).then_some(offset),
                }))
            }
            // "pending", or gone between the two commands.
            None => Ok(Claim::InFlight),
        }
    }
}

/// What a batch does with one of its jobs.
enum Plan {
    /// Store it (and record it under its retry key, if it has one).
    Store(Option<String>),
    /// A retry of the job at this index of the same batch.
    SameAs(usize),
    /// A retry of a message stored before: nothing to store.
    Duplicate(Appended),
    /// A retry whose original is still being stored elsewhere (under this
    /// key): it waits on a task of its own, out of the batch's order.
    Wait(String),
}

/// Senders with appends in a lane, and how many (see [`super::RedisStore`]).
pub(crate) type Behind = Arc<std::sync::Mutex<HashMap<Arc<str>, usize>>>;

/// Takes the waiting appends, a batch at a time, until the store is
/// dropped; for the large lane, `behind` counts each sender's appends done.
pub(crate) async fn run(redis: Arc<Redis>, mut jobs: mpsc::UnboundedReceiver<Job>, behind: Option<Behind>) {
    // A job that did not fit the last batch: it opens the next.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut entries = first.users.len();
        let mut batch = vec![first];
        while batch.len() < MOST_PER_BATCH && entries < MOST_ENTRIES_PER_BATCH {
            let Ok(job) = jobs.try_recv() else { break };
            if entries + job.users.len() > MOST_ENTRIES_PER_BATCH {
                carried = Some(job);
                break;
            }
            entries += job.users.len();
            batch.push(job);
        }
        let senders: Vec<Arc<str>> = match &behind {
            Some(_) => batch.iter().filter_map(|job| job.append.sender.clone()).collect(),
            None => Vec::new(),
        };
        redis.append_batch(batch).await;
        if let Some(behind) = &behind {
            let mut behind = behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for sender in senders {
                if let Some(count) = behind.get_mut(&sender) {
                    *count -= 1;
                    if *count == 0 {
                        behind.remove(&sender);
                    }
                }
            }
        }
    }
}

impl Redis {
    async fn append_batch(self: &Arc<Self>, jobs: Vec<Job>) {
        let plans = match self.claim_all(&jobs).await {
            Ok(plans) => plans,
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut outcomes: Vec<Option<Result<Appended, InboxError>>> = vec![None; jobs.len()];
        let stores: Vec<usize> = (0..jobs.len())
            .filter(|&i| matches!(plans[i], Plan::Store(_)))
            .collect();
        let appends: Vec<(&[Arc<str>], Append<'_>)> = stores
            .iter()
            .map(|&i| (&jobs[i].users[..], jobs[i].append.borrowed()))
            .collect();
        for (&i, stored) in stores.iter().zip(self.store_all(&appends).await) {
            outcomes[i] = Some(stored);
        }
        let records = stores.iter().filter_map(|&i| match (&plans[i], &outcomes[i]) {
            (Plan::Store(Some(key)), Some(stored)) => Some((&key[..], stored, jobs[i].append.message_id)),
            _ => None,
        });
        if let Err(e) = self.record_all(records).await {
            // Stored, but a retry would not find it: the sender must not
            // take it as acked.
            for &i in &stores {
                if let Plan::Store(Some(_)) = plans[i] {
                    outcomes[i] = Some(Err(e.clone()));
                }
            }
        }
        for (i, plan) in plans.iter().enumerate() {
            outcomes[i] = match plan {
                Plan::Store(_) => continue,
                Plan::Duplicate(original) => Some(Ok(original.clone())),
                Plan::SameAs(first) => match &outcomes[*first] {
                    Some(Ok(Appended::Stored { sender_offset, .. })) => Some(Ok(Appended::Duplicate {
                        message_id: jobs[*first].append.message_id,
                        sender_offset: *sender_offset,
                    })),
                    other => other.clone(),
                },
                Plan::Wait(_) => None,
            };
        }
        for ((job, plan), outcome) in jobs.into_iter().zip(plans).zip(outcomes) {
            match (plan, outcome) {
                (Plan::Wait(key), _) => {
                    let redis = Arc::clone(self);
                    tokio::spawn(async move {
                        let appended = redis.append_alone(&job.users, &job.append.borrowed(), &key).await;
                        let _ = job.reply.send(appended);
                    });
                }
                (_, Some(outcome)) => {
                    let _ = job.reply.send(outcome);
                }
                (_, None) => {
                    let _ = job.reply.send(Err(InboxError::unavailable("redis: no answer")));
                }
            }
        }
    }

    /// Claims the batch's retry keys, in one round trip (none without
    /// retries), and says what to do with each job.
    async fn claim_all(&self, jobs: &[Job]) -> Result<Vec<Plan>, InboxError> {
        let mut plans = Vec::with_capacity(jobs.len());
        let mut claims: Vec<usize> = Vec::new();
        let mut first_with: HashMap<String, usize> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let append = job.append.borrowed();
            let (Some(sender), Some(id)) = (append.sender, append.client_msg_id) else {
                plans.push(Plan::Store(None));
                continue;
            };
            let key = self.retry_key(sender, id);
            if let Some(&first) = first_with.get(&key) {
                plans.push(Plan::SameAs(first));
                continue;
            }
            first_with.insert(key.clone(), i);
            claims.push(i);
            plans.push(Plan::Store(Some(key)));
        }
        if claims.is_empty() {
            return Ok(plans);
        }
        let pipes = claims.iter().map(|&i| match &plans[i] {
            Plan::Store(Some(key)) => self.claim_cmds(key),
            _ => unreachable!("only claimed jobs are listed"),
        });
        let answers = self.send_all(pipes).await?;
        for (&i, pair) in claims.iter().zip(answers.chunks(2)) {
            match Claim::of(pair)? {
                Claim::Ours => {}
                Claim::Original(original) => plans[i] = Plan::Duplicate(original),
                Claim::InFlight => {
                    if let Plan::Store(Some(key)) = std::mem::replace(&mut plans[i], Plan::Store(None)) {
                        plans[i] = Plan::Wait(key);
                    }
                }
            }
        }
        Ok(plans)
    }

    /// Stores each append in every inbox it goes to: one pipeline on one
    /// Redis, one pipeline per inbox on a cluster. The answers, in order.
    pub(super) async fn store_all(
        &self,
        appends: &[(&[Arc<str>], Append<'_>)],
    ) -> Vec<Result<Appended, InboxError>> {
        let at_ms = now_ms();
        let stamp = Stamp {
            at_ms,
            cutoff_ms: at_ms.saturating_sub(self.retention.ttl.as_millis() as u64),
            epoch: new_epoch(),
        };
        // The bodies of messages to several inboxes first, once each: an
        // entry is never readable before what it refers to.
        let bodies: Vec<Vec<Cmd>> = appends
            .iter()
            .filter(|(users, _)| crate::entry::shares_body(users.len()))
            .map(|(_, append)| vec![self.body_cmd(append)])
            .collect();
        if !bodies.is_empty() {
            let stored = self.send_all(bodies.into_iter()).await.and_then(|answers| {
                answers
                    .into_iter()
                    .try_for_each(|value| answer::<Value>(value).map(|_| ()))
            });
            if let Err(e) = stored {
                return appends.iter().map(|_| Err(e.clone())).collect();
            }
        }
        let stamp = &stamp;
        let calls: Vec<(&str, Cmd)> = appends
            .iter()
            .flat_map(|(users, append)| {
                let shared = crate::entry::shares_body(users.len());
                users
                    .iter()
                    .map(move |user| (&**user, self.append_cmd(user, append, stamp, shared)))
            })
            .collect();
        let mut answers = match self.send_by_inbox(&calls).await {
            Ok(answers) => answers,
            Err(e) => return appends.iter().map(|_| Err(e.clone())).collect(),
        };
        if answers.iter().any(is_no_script) {
            // A restarted Redis forgot the script: load it, then those again.
            if let Err(e) = self.load_append_script().await {
                return appends.iter().map(|_| Err(e.clone())).collect();
            }
            let again: Vec<usize> = (0..answers.len())
                .filter(|&i| is_no_script(&answers[i]))
                .collect();
            let retried: Vec<(&str, Cmd)> = again.iter().map(|&i| calls[i].clone()).collect();
            match self.send_by_inbox(&retried).await {
                Ok(retried) => {
                    for (i, answer) in again.into_iter().zip(retried) {
                        answers[i] = answer;
                    }
                }
                Err(e) => return appends.iter().map(|_| Err(e.clone())).collect(),
            }
        }
        let mut answers = answers.into_iter();
        appends
            .iter()
            .map(|(users, append)| {
                let mut sender_offset = None;
                let mut offsets = Vec::with_capacity(users.len());
                let mut error = None;
                for (user, value) in users.iter().zip(answers.by_ref()) {
                    match answer::<(u64, String)>(value) {
                        Ok((offset, _epoch)) => {
                            let offset = Offset::try_from(offset).unwrap_or(Offset::MAX);
                            if append.sender == Some(&**user) {
                                sender_offset = Some(offset);
                            }
                            offsets.push(offset);
                        }
                        Err(e) => error = error.or(Some(e)),
                    }
                }
                match error {
                    Some(e) => Err(e),
                    None => Ok(Appended::Stored {
                        offsets,
                        sender_offset,
                    }),
                }
            })
            .collect()
    }

    /// Sends commands that each touch one inbox, keeping the order of
    /// those to the same inbox: one pipeline on one Redis; on a cluster, a
    /// pipeline per inbox, all at once. A command's error is its answer.
    async fn send_by_inbox(&self, calls: &[(&str, Cmd)]) -> Result<Vec<Value>, InboxError> {
        match &self.connection {
            Link::Single(_) => {
                self.send_all(std::iter::once(
                    calls.iter().map(|(_, cmd)| cmd.clone()).collect(),
                ))
                .await
            }
            Link::Cluster(_) => {
                let mut by_inbox: HashMap<&str, Vec<usize>> = HashMap::new();
                for (i, (user, _)) in calls.iter().enumerate() {
                    by_inbox.entry(user).or_default().push(i);
                }
                let groups: Vec<Vec<usize>> = by_inbox.into_values().collect();
                let answers = self
                    .send_all(
                        groups
                            .iter()
                            .map(|group| group.iter().map(|&i| calls[i].1.clone()).collect()),
                    )
                    .await?;
                let mut in_order = vec![Value::Nil; calls.len()];
                for (i, answer) in groups.iter().flatten().zip(answers) {
                    in_order[*i] = answer;
                }
                Ok(in_order)
            }
        }
    }

    /// Sends each list of commands as one pipeline, all at once (in order
    /// on one connection); the answers, flattened in the same order. A
    /// command's error is its answer; only a failed link fails them all.
    pub(super) async fn send_all(
        &self,
        pipes: impl Iterator<Item = Vec<Cmd>>,
    ) -> Result<Vec<Value>, InboxError> {
        let calls = pipes.map(|cmds| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for cmd in cmds {
                pipe.add_command(cmd);
            }
            let mut connection = self.connection.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut connection).await }
        });
        let answers = try_join_all(calls).await.map_err(failed)?;
        Ok(answers.into_iter().flatten().collect())
    }

    async fn load_append_script(&self) -> Result<(), InboxError> {
        let mut connection = self.connection.clone();
        self.append
            .load_async(&mut connection)
            .await
            .map(|_| ())
            .map_err(failed)
    }
}

/// One command's answer, as `T`, or its error.
pub(crate) fn answer<T: FromRedisValue>(value: Value) -> Result<T, InboxError> {
    match value {
        Value::ServerError(e) => Err(InboxError::unavailable(format!(
            "redis: {} {}",
            e.code(),
            e.details().unwrap_or_default()
        ))),
        value => T::from_redis_value(value).map_err(|e| InboxError::unavailable(format!("redis: {e}"))),
    }
}

fn is_no_script(answer: &Value) -> bool {
    matches!(answer, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript))
}
