//! Fakes whose behaviour the test turns like a dial while traffic runs:
//! latency, failures, a heavy tail; and load loops that record who served
//! each request.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{FakeUpstream, Reply, TestGateway, default_reply};

/// What a dialled fake does now.
#[derive(Debug, Default)]
pub struct Dial {
    latency_ms: AtomicU64,
    failing: AtomicBool,
    /// Every `tail_every`th request (by the fake's count) is `tail_x` times slower.
    tail_every: AtomicUsize,
    tail_x: AtomicU64,
}

impl Dial {
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// One request in `every` takes `times` its latency.
    pub fn set_tail(&self, every: usize, times: u64) {
        self.tail_every.store(every, Ordering::SeqCst);
        self.tail_x.store(times, Ordering::SeqCst);
    }

    fn delay(&self, n: usize) -> Duration {
        let base = Duration::from_millis(self.latency_ms.load(Ordering::SeqCst));
        let every = self.tail_every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            return base * self.tail_x.load(Ordering::SeqCst) as u32;
        }
        base
    }
}

/// An OpenAI fake answering after its dial's latency (503 while failing).
pub async fn dialled(latency: Duration) -> (FakeUpstream, Arc<Dial>) {
    let dial = Arc::new(Dial::default());
    dial.set_latency(latency);
    let d = Arc::clone(&dial);
    let up = FakeUpstream::start(move |s, n| {
        let d = Arc::clone(&d);
        async move {
            tokio::time::sleep(d.delay(n)).await;
            if d.failing.load(Ordering::SeqCst) {
                return Reply::Json(
                    503,
                    json!({"error": {"message": "down", "type": "server_error"}}),
                );
            }
            default_reply(&s)
        }
    })
    .await;
    (up, dial)
}

/// One finished request of a load: who served it, how long it took.
#[derive(Debug, Clone)]
pub struct Served {
    pub provider: String,
    pub took: Duration,
}

/// `workers` loops sending chat requests to `model` until stopped,
/// recording each answer; the count of answers is watchable.
pub struct Load {
    pub served: Arc<Mutex<Vec<Served>>>,
    count: watch::Receiver<usize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(gw: &TestGateway, model: &str, workers: usize, body: Value) -> Load {
        let served = Arc::new(Mutex::new(Vec::new()));
        let (tx, count) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{}/v1/chat/completions", gw.base);
        let mut body = body;
        body["model"] = json!(model);
        let tasks = (0..workers)
            .map(|_| {
                let (http, url, body) = (gw.http.clone(), url.clone(), body.clone());
                let (served, tx, stop) = (Arc::clone(&served), Arc::clone(&tx), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let start = Instant::now();
                        let r = http.post(&url).json(&body).send().await.unwrap();
                        assert_eq!(r.status(), 200, "{:?}", r.text().await);
                        let provider = r.headers()["x-switchyard-provider"]
                            .to_str()
                            .unwrap()
                            .to_string();
                        r.bytes().await.unwrap();
                        let took = start.elapsed();
                        let n = {
                            let mut v = served.lock().unwrap();
                            v.push(Served { provider, took });
                            v.len()
                        };
                        tx.send_replace(n);
                    }
                })
            })
            .collect();
        Load {
            served,
            count,
            stop,
            tasks,
        }
    }

    /// Waits until `n` requests in all were answered.
    pub async fn until(&mut self, n: usize) {
        let wait = self.count.wait_for(|c| *c >= n);
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("load stalled")
            .unwrap();
    }

    /// Answers so far.
    pub fn len(&self) -> usize {
        self.served.lock().unwrap().len()
    }

    /// The answers numbered `from..to`, in the order they finished.
    pub fn window(&self, from: usize, to: usize) -> Vec<Served> {
        self.served.lock().unwrap()[from..to].to_vec()
    }

    pub async fn stop(self) -> Vec<Served> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.served).unwrap().into_inner().unwrap()
    }
}

/// The share of `served` answered by `provider`.
pub fn share(served: &[Served], provider: &str) -> f64 {
    served.iter().filter(|s| s.provider == provider).count() as f64 / served.len().max(1) as f64
}

/// The `q` quantile (0..=1) of how long the answers took.
pub fn quantile(served: &[Served], q: f64) -> Duration {
    let mut took: Vec<Duration> = served.iter().map(|s| s.took).collect();
    took.sort();
    let at = ((q * took.len() as f64).ceil() as usize).clamp(1, took.len()) - 1;
    took[at]
}
