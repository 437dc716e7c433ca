//! The `redis` store: one Redis Stream per user, shared by every gateway.
//!
//! An append to one inbox is one server-side script: it assigns the next
//! offset, adds the entry under that id, trims to retention (count, and
//! the oldest few by age) and refreshes the keys' expiry, atomically. A
//! message to many users is one such script per user, each entry referring
//! to the message's body, stored once beside them (for the inboxes'
//! lifetime) before them. Appends go in
//! batches, in the order submitted: every append waiting is one pipeline
//! (see [`batch`]). A user's keys share one hash tag (`{user}`), so
//! inboxes shard across a Redis Cluster's slots; there a batch is one
//! pipeline per inbox, all sent at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jim_protocol::Command;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Script, Value};

use crate::entry::OwnedAppend;
use batch::{Claim, Job, Stamp, answer};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{new_epoch, now_ms};
use crate::{Append, Appended, Entry, InboxError, InboxState, KeptGroup, Offset, Read, Retention};

mod batch;

/// Appends one entry to one inbox; returns `{offset, epoch}`.
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local head = redis.call('HINCRBY', KEYS[2], 'head', 1)
if head > 4294967295 then
  redis.call('DEL', KEYS[1])
  epoch = ARGV[3]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'head', 1)
  head = 1
end
local id = head .. '-0'
-- 't' for the trim below; 'f' the entry as READ gives it, joined here
-- once rather than on every read.
local flat = id .. '\0c\0' .. ARGV[4] .. '\0e\0' .. ARGV[5] .. '\0t\0' .. ARGV[6] .. '\0' .. ARGV[9] .. '\0' .. ARGV[7]
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id, 't', ARGV[6], 'f', flat)
for _ = 1, 16 do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  -- Entries written before 'f' hold 't' as their third field.
  local at = oldest and (oldest[2][1] == 't' and oldest[2][2] or oldest[2][6])
  if not oldest or tonumber(at) >= tonumber(ARGV[2]) then
    break
  end
  redis.call('XDEL', KEYS[1], oldest[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return {head, epoch}
";

/// Keeps a sender's retry key (ARGV[1]) among its recent ones (the list
/// KEYS[1]), deleting the oldest past ARGV[2] (keys of the same sender:
/// one hash tag, one slot); returns how many were forgotten.
const REMEMBER: &str = r"
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local forgotten = 0
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[2]) do
  redis.call('DEL', redis.call('LPOP', KEYS[1]))
  forgotten = forgotten + 1
end
return forgotten
";

/// Moves a mark forward: `KEYS[1]` the user's marks, `ARGV` the mark's
/// key and the message id (decimal). Ids pass 2^53, beyond Lua's numbers:
/// they are compared as zero-padded strings. 1 if it moved.
const MARK: &str = r"
local function padded(id) return string.rep('0', 20 - #id) .. id end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and padded(current) >= padded(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// Reads entries: `KEYS` the stream and the meta hash, `ARGV` the first
/// id and the count. The epoch first, then each entry as one string, its
/// id and fields joined by NUL (bodies are JSON: they hold none), as
/// `APPEND` stored it: one reply element per entry instead of one per
/// field, which is most of what a gateway spends reading an inbox, and
/// nothing built here (joining them on every read was most of Redis's).
const READ: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {epoch or ''}
for i = 1, #entries do
  local entry = entries[i]
  local f = entry[2]
  if f[3] == 'f' then
    out[i + 1] = f[4]
  else
    -- Written before 'f': its four fields, joined now.
    out[i + 1] = entry[1] .. '\0' .. table.concat(f, '\0')
  end
end
return out
";

/// Where one inbox stands (creating its epoch): `{epoch, head, held, oldest id}`.
const STATE: &str = r"
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'head')
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local oldest = ''
if first[1] then oldest = first[1][1] end
return {meta[1], meta[2] or '0', redis.call('XLEN', KEYS[1]), oldest}
";

/// How long a retry waits for an original still being stored.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(2);

/// One Redis, or a Redis Cluster: both multiplexed and reconnecting.
#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(connection) => connection.req_packed_command(cmd),
            Link::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Link::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(connection) => connection.get_db(),
            Link::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The store: reads and group changes go straight to Redis; appends go
/// through the batching task (see [`batch`]).
pub(crate) struct RedisStore {
    redis: Arc<Redis>,
    /// Appends to few inboxes, on their own connection and batches.
    appends: mpsc::UnboundedSender<Job>,
    /// Appends to many (a big group's), on another connection: Redis
    /// serves the two in turn, so a flood to a huge group does not hold up
    /// another user's one-to-one message behind it.
    large: mpsc::UnboundedSender<Job>,
    /// Senders with an append in the large lane, and how many: their
    /// next appends follow it there, in order.
    behind: Arc<std::sync::Mutex<std::collections::HashMap<Arc<str>, usize>>>,
}

/// An append to more inboxes than this goes in the large lane.
const LARGE_APPEND: usize = 64;

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.redis.prefix)
            .finish_non_exhaustive()
    }
}

/// One Redis (or cluster), its scripts and the keys' layout.
pub(crate) struct Redis {
    connection: Link,
    append: Script,
    state: Script,
    mark: Script,
    read: Script,
    retention: Retention,
    prefix: Arc<str>,
    forgotten: metrics::Counter,
}

fn failed(e: redis::RedisError) -> InboxError {
    InboxError::unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects to `url`, or to the Redis Cluster whose seed nodes `url`
    /// lists, comma-separated, and starts the task that appends.
    pub(crate) async fn open(
        url: &str,
        retention: Retention,
        forgotten: metrics::Counter,
    ) -> Result<RedisStore, InboxError> {
        let redis = Arc::new(Redis::open(url, retention, forgotten.clone()).await?);
        let large_lane = Arc::new(Redis::open(url, retention, forgotten).await?);
        // Unbounded, yet bounded by the callers: each session keeps at most
        // `limits.routes_in_flight` messages waiting for their append.
        let (appends, jobs) = mpsc::unbounded_channel();
        tokio::spawn(batch::run(Arc::clone(&redis), jobs, None));
        let behind = Arc::default();
        let (large, large_jobs) = mpsc::unbounded_channel();
        tokio::spawn(batch::run(large_lane, large_jobs, Some(Arc::clone(&behind))));
        Ok(RedisStore {
            redis,
            appends,
            large,
            behind,
        })
    }

    /// Queues an append: appends are stored in the order submitted, and
    /// the receiver gets the outcome.
    pub(crate) fn submit<'u>(
        &self,
        users: impl Iterator<Item = &'u Arc<str>>,
        append: &Append<'_>,
    ) -> oneshot::Receiver<Result<Appended, InboxError>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            users: users.cloned().collect(),
            append: OwnedAppend::of(append),
            reply,
        };
        let mut behind = self
            .behind
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sender = job.append.sender.clone();
        let queued_behind = sender.as_ref().is_some_and(|s| behind.contains_key(s));
        let lane = if job.users.len() > LARGE_APPEND || queued_behind {
            if let Some(sender) = sender {
                *behind.entry(sender).or_default() += 1;
            }
            &self.large
        } else {
            &self.appends
        };
        // The task lives as long as the store; were it gone, the dropped
        // reply says so to the caller.
        let _ = lane.send(job);
        answer
    }

    pub(crate) async fn read(&self, user: &str, after: Offset, max: usize) -> Result<Read, InboxError> {
        self.redis.read(user, after, max).await
    }

    pub(crate) async fn state(&self, user: &str) -> Result<InboxState, InboxError> {
        self.redis.state(user).await
    }

    pub(crate) async fn save_group(&self, group: &str, members: Vec<Arc<str>>) -> Result<(), InboxError> {
        self.redis.save_group(group, members).await
    }

    pub(crate) async fn set_mark(&self, user: &str, key: &str, id: u64) -> Result<bool, InboxError> {
        let mut connection = self.redis.connection.clone();
        let moved: i64 = self
            .redis
            .mark
            .key(self.redis.marks_key(user))
            .arg(key)
            .arg(id.to_string())
            .invoke_async(&mut connection)
            .await
            .map_err(failed)?;
        Ok(moved == 1)
    }

    pub(crate) async fn marks(&self, user: &str) -> Result<Vec<(String, u64)>, InboxError> {
        let mut connection = self.redis.connection.clone();
        let marks: Vec<(String, String)> = connection
            .hgetall(self.redis.marks_key(user))
            .await
            .map_err(failed)?;
        Ok(marks
            .into_iter()
            .filter_map(|(key, id)| Some((key, id.parse().ok()?)))
            .collect())
    }

    pub(crate) async fn groups(&self) -> Result<Vec<KeptGroup>, InboxError> {
        self.redis.groups().await
    }
}

impl Redis {
    async fn open(url: &str, retention: Retention, forgotten: metrics::Counter) -> Result<Redis, InboxError> {
        let open_err = |e: redis::RedisError| InboxError::Open {
            reason: format!("redis {}: {e}", crate::config::redacted(url)),
        };
        let timeout = Duration::from_secs(2);
        let connection = if url.contains(',') {
            let seeds: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            let client = redis::cluster::ClusterClient::builder(seeds)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(2)
                .build()
                .map_err(open_err)?;
            Link::Cluster(client.get_async_connection().await.map_err(open_err)?)
        } else {
            let client = redis::Client::open(url).map_err(open_err)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2);
            Link::Single(
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(open_err)?,
            )
        };
        Ok(Redis {
            connection,
            append: Script::new(APPEND),
            state: Script::new(STATE),
            mark: Script::new(MARK),
            read: Script::new(READ),
            retention,
            prefix: "jim:".into(),
            forgotten,
        })
    }

    fn stream(&self, user: &str) -> String {
        format!("{}{{{user}}}:in", self.prefix)
    }

    /// Each user's marks (receipts): a hash of key → message id.
    fn marks_key(&self, user: &str) -> String {
        format!("{}{{{user}}}:marks", self.prefix)
    }

    fn meta(&self, user: &str) -> String {
        format!("{}{{{user}}}:meta", self.prefix)
    }

    /// A message's body, kept once for all its inboxes.
    fn body_key(&self, message_id: u64) -> String {
        format!("{}body:{message_id}", self.prefix)
    }

    fn retry_key(&self, sender: &str, client_msg_id: &str) -> String {
        format!("{}{{{sender}}}:retry:{client_msg_id}", self.prefix)
    }

    /// A sender's retry keys, oldest first (see [`REMEMBER`]).
    fn retries_key(&self, retry_key: &str) -> String {
        // The retry key's own hash tag: `{sender}`.
        let sender_tag = retry_key.split(":retry:").next().unwrap_or(retry_key);
        format!("{sender_tag}:retries")
    }

    fn ttl_secs(&self) -> u64 {
        self.retention.ttl.as_secs().max(1)
    }

    /// One append on its own, after waiting for the original of a retry
    /// still being stored elsewhere (see [`batch`]): claims its retry key,
    /// stores, records.
    async fn append_alone(
        &self,
        users: &[Arc<str>],
        append: &Append<'_>,
        key: &str,
    ) -> Result<Appended, InboxError> {
        if let Some(original) = self.claim(key).await? {
            return Ok(original);
        }
        let mut stored = self.store_all(&[(users, *append)]).await;
        let stored = stored
            .pop()
            .unwrap_or_else(|| Err(InboxError::unavailable("redis: no answer")));
        self.record_all([(key, &stored, append.message_id)].into_iter())
            .await?;
        stored
    }

    /// Claims a retry key for this send; returns the original if another
    /// send took it first, waiting while that one is still being stored.
    async fn claim(&self, key: &str) -> Result<Option<Appended>, InboxError> {
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let answers = self.send_all(std::iter::once(self.claim_cmds(key))).await?;
            match Claim::of(&answers)? {
                Claim::Ours => return Ok(None),
                Claim::Original(original) => return Ok(Some(original)),
                Claim::InFlight if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Claim::InFlight => {
                    return Err(InboxError::unavailable(
                        "a send with this client_msg_id is still being stored; retry",
                    ));
                }
            }
        }
    }

    /// `SET key pending NX`, then what the key holds: whether this send
    /// claimed it, or the original's record.
    fn claim_cmds(&self, key: &str) -> Vec<Cmd> {
        let window = self.retention.dedupe_window.as_millis() as u64;
        let mut claim = redis::cmd("SET");
        claim
            .arg(key)
            .arg("pending")
            .arg("NX")
            .arg("PX")
            .arg(window.max(1));
        let mut get = redis::cmd("GET");
        get.arg(key);
        vec![claim, get]
    }

    /// Records what each claimed send became: the original's id and
    /// offset for the window, or (not stored) nothing, so that a retry
    /// can try again.
    async fn record_all<'a>(
        &self,
        claimed: impl Iterator<Item = (&'a str, &'a Result<Appended, InboxError>, u64)>,
    ) -> Result<(), InboxError> {
        let window = self.retention.dedupe_window.as_millis() as u64;
        let pipes: Vec<Vec<Cmd>> = claimed
            .map(|(key, stored, message_id)| {
                let mut cmd;
                if let Ok(Appended::Stored { sender_offset, .. }) = stored {
                    cmd = redis::cmd("SET");
                    cmd.arg(key)
                        .arg(format!("{message_id}:{}", sender_offset.unwrap_or(0)))
                        .arg("PX")
                        .arg(window.max(1));
                    let mut remember = redis::cmd("EVAL");
                    remember
                        .arg(REMEMBER)
                        .arg(1)
                        .arg(self.retries_key(key))
                        .arg(key)
                        .arg(self.retention.dedupe_per_user.max(1))
                        .arg(window.max(1));
                    vec![cmd, remember]
                } else {
                    cmd = redis::cmd("DEL");
                    cmd.arg(key);
                    vec![cmd]
                }
            })
            .collect();
        if pipes.is_empty() {
            return Ok(());
        }
        // Each pipe answers SET then REMEMBER's count, or DEL alone.
        let remembered: Vec<bool> = pipes.iter().map(|pipe| pipe.len() == 2).collect();
        let mut answers = self.send_all(pipes.into_iter()).await?.into_iter();
        for remembers in remembered {
            answer::<Value>(answers.next().unwrap_or(Value::Nil))?;
            if remembers {
                let forgotten: u64 = answer(answers.next().unwrap_or(Value::Nil))?;
                self.forgotten.increment(forgotten);
            }
        }
        Ok(())
    }

    /// The `APPEND` script's call for one user's inbox: with the body
    /// (`b`), or, `shared`, with the key of the body stored once (`r`).
    fn append_cmd(&self, user: &str, append: &Append<'_>, stamp: &Stamp, shared: bool) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.append.get_hash())
            .arg(2)
            .arg(self.stream(user))
            .arg(self.meta(user))
            .arg(self.retention.max_entries)
            .arg(stamp.cutoff_ms)
            .arg(&*stamp.epoch)
            .arg(&append.cmd.code()[..])
            .arg(append.except.unwrap_or(0))
            .arg(stamp.at_ms);
        if shared {
            cmd.arg(self.body_key(append.message_id));
        } else {
            cmd.arg(&append.body[..]);
        }
        cmd.arg(self.ttl_secs()).arg(if shared { "r" } else { "b" });
        cmd
    }

    /// Stores the body of a message to several inboxes, once, for as long
    /// as an inbox keeps entries.
    fn body_cmd(&self, append: &Append<'_>) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.body_key(append.message_id))
            .arg(&append.body[..])
            .arg("EX")
            .arg(self.ttl_secs());
        cmd
    }

    pub(crate) async fn read(&self, user: &str, after: Offset, max: usize) -> Result<Read, InboxError> {
        let mut connection = self.connection.clone();
        let start = format!("{}-0", u64::from(after) + 1);
        let reply: Vec<Vec<u8>> = self
            .read
            .key(self.stream(user))
            .key(self.meta(user))
            .arg(start)
            .arg(max.max(1))
            .invoke_async(&mut connection)
            .await
            .map_err(failed)?;
        let mut reply = reply.into_iter();
        let epoch = String::from_utf8(reply.next().unwrap_or_default()).unwrap_or_default();
        let cutoff = now_ms().saturating_sub(self.retention.ttl.as_millis() as u64);
        let mut entries: Vec<(Entry, Option<String>)> = reply
            .filter_map(|flat| decode_flat(Bytes::from(flat)))
            .filter(|(entry, _)| entry.at_ms >= cutoff)
            .collect();
        // Bodies stored once for many inboxes: one pipeline of GETs (one
        // per node of a cluster), in the order of the entries.
        let shared: Vec<Vec<Cmd>> = entries
            .iter()
            .filter_map(|(_, key)| key.as_ref())
            .map(|key| {
                let mut get = redis::cmd("GET");
                get.arg(key);
                vec![get]
            })
            .collect();
        if !shared.is_empty() {
            let mut bodies = self.send_all(shared.into_iter()).await?.into_iter();
            let mut kept = Vec::with_capacity(entries.len());
            for (mut entry, key) in entries {
                if key.is_some() {
                    match batch::answer::<Option<Vec<u8>>>(bodies.next().unwrap_or(Value::Nil))? {
                        Some(body) => entry.body = Bytes::from(body),
                        // Expired with the inbox's age: the entry is as old.
                        None => continue,
                    }
                }
                kept.push((entry, None));
            }
            entries = kept;
        }
        Ok(Read {
            epoch: epoch.into(),
            entries: entries.into_iter().map(|(entry, _)| entry).collect(),
        })
    }

    pub(crate) async fn state(&self, user: &str) -> Result<InboxState, InboxError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.state.prepare_invoke();
        invocation
            .key(self.stream(user))
            .key(self.meta(user))
            .arg(&*new_epoch())
            .arg(self.ttl_secs());
        let (epoch, head, held, oldest): (String, String, u32, String) =
            invocation.invoke_async(&mut connection).await.map_err(failed)?;
        let head: Offset = head.parse().unwrap_or(0);
        let oldest = offset_of(&oldest).unwrap_or(head.wrapping_add(1));
        Ok(InboxState {
            epoch: epoch.into(),
            oldest,
            head,
            held,
        })
    }

    /// The set of group names, and one group's members: one hash tag, so
    /// that a change is one transaction on one node of a cluster.
    fn group_keys(&self, group: &str) -> (String, String) {
        (
            format!("{}{{groups}}", self.prefix),
            format!("{}{{groups}}:{group}", self.prefix),
        )
    }

    pub(crate) async fn save_group(&self, group: &str, members: Vec<Arc<str>>) -> Result<(), InboxError> {
        let (names, key) = self.group_keys(group);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key);
        if members.is_empty() {
            pipe.srem(&names, group);
        } else {
            let members: Vec<&str> = members.iter().map(|m| &**m).collect();
            pipe.sadd(&key, members).sadd(&names, group);
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection).await.map_err(failed)
    }

    pub(crate) async fn groups(&self) -> Result<Vec<KeptGroup>, InboxError> {
        let mut connection = self.connection.clone();
        let names: Vec<String> = connection.smembers(self.group_keys("").0).await.map_err(failed)?;
        let mut groups = Vec::with_capacity(names.len());
        for name in names {
            let mut members: Vec<String> = connection
                .smembers(self.group_keys(&name).1)
                .await
                .map_err(failed)?;
            members.sort();
            groups.push((name.into(), members.into_iter().map(Into::into).collect()));
        }
        Ok(groups)
    }
}

fn offset_of(id: &str) -> Option<Offset> {
    id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}

/// An entry as stored, and the key of its body when it is stored once for
/// several inboxes.
/// An entry as [`READ`] gives it: its id and fields joined by NUL; the
/// body is a slice of the reply, not a copy.
fn decode_flat(flat: Bytes) -> Option<(Entry, Option<String>)> {
    // The id and four fields: the body (or its key) is the last value, so
    // the scan for separators stops before it, not after it.
    let mut parts = Vec::with_capacity(9);
    let mut start = 0;
    while parts.len() < 8 {
        let Some(at) = flat[start..].iter().position(|b| *b == 0) else {
            break;
        };
        parts.push(start..start + at);
        start += at + 1;
    }
    parts.push(start..flat.len());
    let mut parts = parts.into_iter();
    let id = std::str::from_utf8(&flat[parts.next()?]).ok()?;
    let mut shared = None;
    let mut entry = Entry {
        offset: offset_of(id)?,
        cmd: Command::C2C,
        except: None,
        at_ms: 0,
        body: Bytes::new(),
    };
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        let text = || std::str::from_utf8(&flat[value.clone()]).ok();
        match &flat[name] {
            b"c" => entry.cmd = Command::from_code(<[u8; 4]>::try_from(&flat[value.clone()]).ok()?),
            b"e" => entry.except = text()?.parse().ok().filter(|e| *e != 0),
            b"t" => entry.at_ms = text()?.parse().ok()?,
            b"b" => entry.body = flat.slice(value),
            b"r" => shared = Some(text()?.to_owned()),
            _ => {}
        }
    }
    Some((entry, shared))
}
