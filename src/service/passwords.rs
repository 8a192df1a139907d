//! Password hashing off the async runtime. Argon2id runs on a small pool of its own threads
//! (`hash_concurrency`, default one per core) at a lower scheduling priority: a login flood uses every
//! idle cycle, queues the logins it cannot serve, and still yields the CPU to the async workers that
//! answer token-checked requests. The queue is bounded (`hash_queue`): beyond it a login is refused at once
//! with 503 and `Retry-After` instead of waiting behind a flood.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
    mpsc,
};

use anyhow::Context;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::{
    config::Config,
    domain::password::{Hasher, Policy, Verification},
    error::{Error, Result},
};

type Job = Box<dyn FnOnce(&Hasher) + Send>;

/// `nice` value of the hashing threads: low enough that the async workers win the CPU when both want it.
const HASH_THREAD_NICE: i32 = 10;

pub struct Passwords {
    jobs: Mutex<mpsc::SyncSender<Job>>,
    /// Jobs sent and not yet started.
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    pub policy: Policy,
}

impl Passwords {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let hasher = Arc::new(Hasher::new(config.argon2_memory_kib, config.argon2_iterations)?);
        let (jobs, queue) = mpsc::sync_channel::<Job>(config.hash_queue);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..config.hash_concurrency {
            let (hasher, queue) = (hasher.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("latchkey-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    // Ends when `Passwords` is dropped and the queue closes.
                    while let Ok(job) = { queue.lock().unwrap_or_else(|p| p.into_inner()).recv() } {
                        job(&hasher);
                    }
                })
                .context("cannot start the password hashing threads")?;
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
            waiting: Arc::default(),
            capacity: config.hash_queue,
            policy: Policy { min_chars: config.password_min_length },
        })
    }

    /// Whether a check sent now would be refused: lets a login shed load before it does any other work.
    pub fn is_saturated(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) >= self.capacity
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&Hasher) -> T + Send + 'static) -> Result<T> {
        let (done, result) = oneshot::channel();
        let waiting = self.waiting.clone();
        let job: Job = Box::new(move |hasher| {
            waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = done.send(work(hasher));
        });
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match self.jobs.lock().unwrap_or_else(|p| p.into_inner()).try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(overloaded());
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(Error::Internal(anyhow::anyhow!("the password hashing threads have stopped")));
            }
        }
        result.await.map_err(|_| Error::Internal(anyhow::anyhow!("a password hashing job was dropped")))
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = Zeroizing::new(password.to_string());
        self.run(move |h| h.hash(&password)).await?.map_err(|e| Error::Internal(e.into()))
    }

    /// `stored: None` (no such user) still costs one full verification and never matches.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verification> {
        let password = Zeroizing::new(password.to_string());
        let stored = stored.map(str::to_string);
        self.run(move |h| match stored {
            Some(stored) => h.verify(&password, &stored),
            None => {
                h.verify_dummy(&password);
                Ok(Verification::Mismatch)
            }
        })
        .await?
        .map_err(|e| Error::Internal(e.into()))
    }
}

/// 503 `unavailable` (with `Retry-After`): more checks are waiting than `hash_queue` allows.
pub fn overloaded() -> Error {
    metrics::counter!("latchkey_hash_queue_full_total").increment(1);
    Error::Unavailable
}

/// Lowers this thread's priority. Best effort: where it is not allowed, hashing simply runs at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id has no memory-safety preconditions.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HASH_THREAD_NICE);
    }
}
