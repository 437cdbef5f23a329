//! Cluster mode through the binary, three nodes on 127.0.0.1 (no root needed; the fault
//! campaign over network namespaces is `cluster_faults.rs`): a sale through every node
//! (forwarding to the leaders), `GET /v1/cluster`, the leader of a shard killed mid-sale,
//! writes resuming on the others, an idempotent retry across the failover, the killed node
//! restarting and catching up, every node restarted at once with nothing lost, the
//! decision metrics counted once, by the leader, and the single-node and cluster data
//! directories refusing each other by the mode they record (or, written by an older
//! release, by what they hold).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{binary, code, metric, request, send, user_token, ADMIN, SECRET};
use serde_json::{json, Value};

/// The header that marks a forwarded request (`server/src/api/cluster.rs`).
const FORWARDED_BY: &str = "x-boxoffice-forwarded-by";

/// How long any wait of this test may last before it fails.
const WAIT: Duration = Duration::from_secs(30);

struct Node {
    id: u64,
    http: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    _root: tempfile::TempDir,
    file: PathBuf,
    nodes: Vec<Node>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn new(shards: u16) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut text = format!("shards = {shards}\n");
        let mut nodes = Vec::new();
        for id in 1..=3u64 {
            let (http, raft) = (free_port(), free_port());
            text.push_str(&format!(
                "[[nodes]]\nid = {id}\nhttp = \"127.0.0.1:{http}\"\nraft = \"127.0.0.1:{raft}\"\n"
            ));
            nodes.push(Node {
                id,
                http,
                dir: root.path().join(format!("node-{id}")),
                log: root.path().join(format!("node-{id}.log")),
                child: None,
            });
        }
        let file = root.path().join("cluster.toml");
        std::fs::write(&file, text).unwrap();
        let mut cluster = Cluster {
            _root: root,
            file,
            nodes,
        };
        for i in 0..3 {
            cluster.start(i);
        }
        cluster
    }

    fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        let child = Command::new(binary())
            .args(["serve", "--cluster"])
            .arg(&self.file)
            .args(["--node-id", &node.id.to_string(), "--data-dir"])
            .arg(&node.dir)
            .env("BOXOFFICE_ADMIN_TOKEN", ADMIN)
            .env("BOXOFFICE_JWT_SECRET", SECRET)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("boxoffice starts");
        node.child = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                format!(
                    "---- node {} ----\n{}",
                    n.id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn view(&self, i: usize) -> Option<Value> {
        match request(self.nodes[i].http, "GET", "/v1/cluster", None, None) {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    }

    /// Waits until node `i` sees a leader for every shard and returns its view.
    fn settled(&self, i: usize) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(view) = self.view(i) {
                if view["shards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["leader"].is_u64())
                {
                    return view;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} saw no leader for every shard; logs:\n{}",
                i + 1,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn leader_of(&self, via: usize, shard: usize) -> usize {
        let view = self.settled(via);
        view["shards"][shard]["leader"].as_u64().unwrap() as usize - 1
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
    }
}

fn event(id: &str) -> Value {
    json!({
        "id": id, "name": "Cluster test", "max_per_user": 40, "hold_ttl_seconds": 600,
        "sections": [
            {"id": "floor", "name": "Floor", "price_cents": 5000, "capacity": 100},
            {"id": "tier1", "name": "Tier 1", "price_cents": 9000,
             "seats": {"rows": [{"label": "A", "count": 10}]}}
        ]
    })
}

/// Retries a request while it answers 503 or the node is unreachable, at most [`WAIT`].
fn until_answered(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(reply) = send(port, method, path, headers, Some(body)) {
            if reply.status != 503 {
                return (reply.status, reply.body);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{method} {path} kept answering 503"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn counts(port: u16, event_id: &str) -> Vec<(u64, u64, u64)> {
    let (status, body) =
        request(port, "GET", &format!("/v1/events/{event_id}"), None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    body["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["available"].as_u64().unwrap(),
                s["held"].as_u64().unwrap(),
                s["sold"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits until every running node answers the same counts for the event.
fn converged(cluster: &Cluster, event_id: &str) -> Vec<(u64, u64, u64)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seen: Vec<_> = cluster
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| counts(n.http, event_id))
            .collect();
        if seen.windows(2).all(|w| w[0] == w[1]) {
            return seen[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "nodes disagree: {seen:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn admin() -> String {
    format!("Bearer {ADMIN}")
}

#[test]
fn a_sale_survives_the_death_of_a_shards_leader_and_a_restart_of_every_node() {
    let mut cluster = Cluster::new(2);
    let view = cluster.settled(0);
    assert_eq!(view["node_id"], 1);
    assert_eq!(view["nodes"].as_array().unwrap().len(), 3);
    for shard in view["shards"].as_array().unwrap() {
        assert_eq!(shard["replicas"], json!([1, 2, 3]));
        assert!(shard["term"].as_u64().unwrap() >= 1);
    }
    // Events on both shards, created through different nodes (forwarded to the leaders).
    let admin = admin();
    let auth = [("authorization", admin.as_str())];
    let mut events = Vec::new();
    for (i, id) in ["cl-a", "cl-b", "cl-c", "cl-d"].iter().enumerate() {
        let port = cluster.nodes[i % 3].http;
        let (status, body) =
            until_answered(port, "POST", "/v1/events", &auth, &event(id).to_string());
        assert_eq!(status, 201, "{body}");
        events.push(id.to_string());
    }
    let alice = format!("Bearer {}", user_token("alice"));
    let alice_h = [("authorization", alice.as_str())];
    // A hold through node 3 and its confirmation through node 2: ids name their shard.
    let (status, hold) = until_answered(
        cluster.nodes[2].http,
        "POST",
        "/v1/events/cl-a/holds",
        &alice_h,
        r#"{"items": [{"section_id": "floor", "qty": 2}], "seats": ["A-3"]}"#,
    );
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["id"].as_str().unwrap().to_string();
    let shard: usize = hold_id.split('-').nth(1).unwrap().parse().unwrap();
    let (status, booking) = until_answered(
        cluster.nodes[1].http,
        "POST",
        &format!("/v1/holds/{hold_id}/confirm"),
        &alice_h,
        r#"{"payment_ref": "pay-1"}"#,
    );
    assert_eq!(status, 201, "{booking}");
    assert_eq!(converged(&cluster, "cl-a")[0], (98, 0, 2));
    // The lists read every shard: each node gathers every shard's part from its leader
    // (the shards are led by different nodes), whole and a page at a time.
    wait_for_preferred_leader(&cluster, 0);
    wait_for_preferred_leader(&cluster, 1);
    assert_ne!(
        cluster.leader_of(0, 0),
        cluster.leader_of(0, 1),
        "the shards have one leader: the lists would not be gathered from two"
    );
    for node in &cluster.nodes {
        let (status, page) = request(node.http, "GET", "/v1/events", None, None).unwrap();
        assert_eq!(status, 200, "{page}");
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, events, "{page}");
        let (mut paged, mut after) = (Vec::new(), String::new());
        loop {
            let path = format!("/v1/events?limit=1&after={after}");
            let (status, page) = request(node.http, "GET", &path, None, None).unwrap();
            assert_eq!(status, 200, "{page}");
            paged.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].clone()),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => after = cursor.to_string(),
                None => break,
            }
        }
        assert_eq!(paged, events, "paged through node {}", node.id);
        // The pages too: the list links every event; an unknown event's page is 404 on
        // every node (its shard's leader is asked), a known one's 200.
        let index = send(node.http, "GET", "/", &[], None).unwrap();
        let index = index.body.as_str().unwrap().to_string();
        for id in &events {
            assert!(
                index.contains(&format!(r#"href="/events/{id}""#)),
                "{index}"
            );
        }
        for (path, status) in [
            ("/events/nope", 404),
            ("/events/cl-a%3Fx", 404),
            ("/events/cl-a", 200),
            ("/events/cl-b", 200),
        ] {
            let page = send(node.http, "GET", path, &[], None).unwrap();
            assert_eq!(page.status, status, "{path} through node {}", node.id);
        }
        let (status, mine) = request(
            node.http,
            "GET",
            "/v1/bookings",
            Some(&user_token("alice")),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{mine}");
        assert_eq!(mine["data"].as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine["data"][0]["id"], booking["id"]);
    }
    // The decision metrics are counted by the shard's leader, once per committed decision
    // (a follower that counted too would make the sums 3).
    let summed = |name: &str| -> f64 { (0..3).map(|i| metric(cluster.nodes[i].http, name)).sum() };
    for family in [
        "boxoffice_holds_placed_total",
        "boxoffice_holds_confirmed_total",
    ] {
        let name = format!("{family}{{shard=\"{shard}\"}}");
        assert_eq!(summed(&name), 1.0, "{name}");
    }
    let decisions: f64 = (0..2)
        .map(|s| summed(&format!("boxoffice_decisions_total{{shard=\"{s}\"}}")))
        .sum();
    assert_eq!(decisions, 6.0, "4 events, a hold and its confirmation");

    // Kill the leader of the hold's shard; buy through a survivor with an idempotency key.
    let leader = cluster.leader_of(0, shard);
    cluster.kill9(leader);
    let survivor = (leader + 1) % 3;
    let port = cluster.nodes[survivor].http;
    let key_h = [
        ("authorization", alice.as_str()),
        ("idempotency-key", "buy-after-kill"),
    ];
    let body = r#"{"items": [{"section_id": "floor", "qty": 3}], "payment_ref": "pay-2"}"#;
    let (status, first) = until_answered(port, "POST", "/v1/events/cl-a/bookings", &key_h, body);
    assert_eq!(status, 201, "{first}");
    // The same key again, through the other survivor: the first answer, not a second sale.
    let other = cluster.nodes[(leader + 2) % 3].http;
    let (status, again) = until_answered(other, "POST", "/v1/events/cl-a/bookings", &key_h, body);
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["id"], first["id"]);
    let after_kill = converged(&cluster, "cl-a");
    assert_eq!(after_kill[0], (95, 0, 5));
    // A keyed refusal is a replicated decision too: more than alice may hold (40 each),
    // refused; its retry, after she held more and every node restarted, still says "6".
    let refused_h = [
        ("authorization", alice.as_str()),
        ("idempotency-key", "one-too-many"),
    ];
    let too_many = r#"{"items": [{"section_id": "floor", "qty": 96}]}"#;
    let (status, refused) =
        until_answered(port, "POST", "/v1/events/cl-a/holds", &refused_h, too_many);
    assert_eq!(
        (status, code(&refused)),
        (409, "limit_exceeded"),
        "{refused}"
    );
    let view = cluster.settled(survivor);
    assert_ne!(
        view["shards"][shard]["leader"].as_u64(),
        Some(leader as u64 + 1)
    );
    // The survivors notice the dead node (it stops answering pings).
    let deadline = Instant::now() + WAIT;
    while cluster.view(survivor).unwrap()["nodes"][leader]["reachable"] != json!(false) {
        assert!(
            Instant::now() < deadline,
            "the dead node still shows reachable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The killed node comes back and catches up.
    cluster.start(leader);
    let deadline = Instant::now() + WAIT;
    while request(
        cluster.nodes[leader].http,
        "GET",
        "/v1/events/cl-a",
        None,
        None,
    )
    .map(|(s, _)| s != 200)
    .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the restarted node never answered\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(converged(&cluster, "cl-a"), after_kill);
    let applied = |i: usize| {
        cluster
            .view(i)
            .map(|v| v["shards"][shard]["applied"].clone())
    };
    let deadline = Instant::now() + WAIT;
    while !(applied(0) == applied(1) && applied(1) == applied(2)) {
        assert!(Instant::now() < deadline, "applied positions never met");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Every node killed at once, then restarted: nothing acknowledged is lost.
    let before: Vec<_> = events.iter().map(|e| converged(&cluster, e)).collect();
    for i in 0..3 {
        cluster.kill9(i);
    }
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.settled(0);
    let after: Vec<_> = events.iter().map(|e| converged(&cluster, e)).collect();
    assert_eq!(before, after);
    let (status, booking) = request(
        cluster.nodes[2].http,
        "GET",
        &format!("/v1/bookings/{}", first["id"].as_str().unwrap()),
        Some(&user_token("alice")),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{booking}");
    assert_eq!(booking["status"], "confirmed");

    // A request marked as forwarded is never forwarded again: a node that does not lead
    // its shard answers it 503 itself.
    let leader = cluster.leader_of(0, shard);
    let follower = (leader + 1) % 3;
    let marked = [("authorization", alice.as_str()), (FORWARDED_BY, "9")];
    let hold_body = r#"{"items": [{"section_id": "floor", "qty": 1}]}"#;
    let reply = send(
        cluster.nodes[follower].http,
        "POST",
        "/v1/events/cl-a/holds",
        &marked,
        Some(hold_body),
    )
    .unwrap();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(
        converged(&cluster, "cl-a"),
        after_kill,
        "nothing was decided"
    );

    // With no quorum nothing is acknowledged: both followers of the shard down, a write to
    // its leader answers 503. Once they are back, a retry with the same key gets one hold.
    wait_for_preferred_leader(&cluster, shard);
    let leader = cluster.leader_of(0, shard);
    // A write decided by the leader first, so that it decides in this term (a leader that
    // has not begun deciding would refuse for want of a quorum round anyway).
    let port = cluster.nodes[leader].http;
    let (status, warm) = until_answered(port, "POST", "/v1/events/cl-a/holds", &alice_h, hold_body);
    assert_eq!(status, 201, "{warm}");
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &followers {
        cluster.kill9(i);
    }
    let key_h = [
        ("authorization", alice.as_str()),
        ("idempotency-key", "hold-without-quorum"),
    ];
    let reply = send(
        cluster.nodes[leader].http,
        "POST",
        "/v1/events/cl-a/holds",
        &key_h,
        Some(hold_body),
    )
    .unwrap();
    assert_eq!(
        reply.status, 503,
        "acknowledged without a quorum: {}",
        reply.body
    );
    // Its node says so on /ready, once its peers have gone silent: it cannot write.
    let deadline = Instant::now() + WAIT;
    let ready = loop {
        let (status, ready) = request(port, "GET", "/ready", None, None).unwrap();
        if status == 503 || Instant::now() > deadline {
            break (status, ready);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready.0, 503, "ready without a quorum: {}", ready.1);
    assert_eq!(
        ready.1["shards"][shard]["status"], "unavailable",
        "{}",
        ready.1
    );
    for &i in &followers {
        cluster.start(i);
    }
    let (status, held) = until_answered(port, "POST", "/v1/events/cl-a/holds", &key_h, hold_body);
    assert_eq!(status, 201, "{held}");
    let (available, held_n, sold) = after_kill[0];
    let after_quorum = converged(&cluster, "cl-a");
    assert_eq!(
        after_quorum[0],
        (available - 2, held_n + 2, sold),
        "two holds"
    );
    let after_kill = after_quorum;
    let (status, replayed) = until_answered(
        cluster.nodes[(leader + 1) % 3].http,
        "POST",
        "/v1/events/cl-a/holds",
        &refused_h,
        too_many,
    );
    assert_eq!(
        (status, &replayed["error"]["message"]),
        (409, &refused["error"]["message"]),
        "the keyed refusal replays as first answered: {replayed}"
    );

    // A cluster node's data directory does not start as a single-node server.
    let dir = cluster.nodes[0].dir.clone();
    cluster.kill9(0);
    assert_eq!(recorded_mode(&dir), json!("cluster"));
    refused_as_single_node(&dir);
    // Nor as the previous release wrote it, with no mode in boxoffice.json (inferred from
    // its Raft logs); and it still starts as a cluster node, which records the mode.
    let meta_path = dir.join("boxoffice.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("mode");
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    refused_as_single_node(&dir);
    assert_eq!(recorded_mode(&dir), Value::Null, "a refusal writes nothing");
    cluster.start(0);
    cluster.settled(0);
    assert_eq!(converged(&cluster, "cl-a"), after_kill);
    assert_eq!(recorded_mode(&dir), json!("cluster"));

    // Two nodes die: the survivor names no dead node as a leader (null: no election can
    // end), and /ready says it cannot write.
    cluster.kill9(1);
    cluster.kill9(2);
    let survivor = cluster.nodes[0].http;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, view) = request(survivor, "GET", "/v1/cluster", None, None).unwrap();
        let leaders: Vec<Value> = view["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["leader"].clone())
            .collect();
        if leaders.iter().all(|l| l.is_null() || *l == json!(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "a dead node still leads: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, ready) = request(survivor, "GET", "/ready", None, None).unwrap();
    assert_eq!(status, 503, "{ready}");
}

/// Waits (a few seconds at most, never failing) until shard `shard` is led by its
/// preferred node (`nodes[shard % 3]`), so that no leadership transfer is under way.
fn wait_for_preferred_leader(cluster: &Cluster, shard: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.leader_of(0, shard) != shard % 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `mode` recorded in a data directory's `boxoffice.json` (null if none).
fn recorded_mode(dir: &Path) -> Value {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("boxoffice.json")).unwrap()).unwrap();
    meta["mode"].clone()
}

#[test]
fn a_cluster_node_refuses_a_single_node_directory_by_its_recorded_mode() {
    // A single-node server's directory, started and stopped before any sale: no shard has
    // history, so only the recorded mode tells whose it is.
    let mut server = harness::Server::start(harness::Launch::default());
    server.terminate();
    let dir = server.data_dir();
    assert_eq!(recorded_mode(&dir), json!("single"));
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("cluster.toml");
    let mut text = "shards = 2\n".to_string();
    for id in 1..=3 {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nhttp = \"127.0.0.1:{}\"\nraft = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ));
    }
    std::fs::write(&file, text).unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--cluster"])
        .arg(&file)
        .args(["--node-id", "1", "--data-dir"])
        .arg(&dir)
        .env("BOXOFFICE_ADMIN_TOKEN", ADMIN)
        .env("BOXOFFICE_JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the cluster node started on a single-node directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("single-node server's data"), "{stderr}");
    assert_eq!(recorded_mode(&dir), json!("single"));
}

fn refused_as_single_node(dir: &Path) {
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("BOXOFFICE_ADMIN_TOKEN", ADMIN)
        .env("BOXOFFICE_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster node"), "{stderr}");
}

#[test]
fn a_single_node_answers_404_for_the_cluster_and_bad_cluster_files_are_refused() {
    let server = harness::Server::start(harness::Launch::default());
    let (status, body) = server.call("GET", "/v1/cluster", None, None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(
        &file,
        "shards = 2\n[[nodes]]\nid = 1\nhttp = \"127.0.0.1:1\"\nraft = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["serve", "--cluster"])
        .arg(&file)
        .args(["--node-id", "1", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exactly 3"), "{stderr}");
    let out = Command::new(binary())
        .args(["serve", "--node-id", "1"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--node-id without --cluster is refused"
    );
}
