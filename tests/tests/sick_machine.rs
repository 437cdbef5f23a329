//! A sick machine, through the real binary: a frozen disk (`fsfreeze` on a loop-mounted
//! ext4 image), a full disk (a small tmpfs), a wall clock an hour behind the log
//! (libfaketime), and the counters an operator watches meanwhile.
//!
//! The disk tests need root (mount, losetup, fsfreeze); the clock test needs libfaketime
//! (Debian `libfaketime`, installed by `.ci/run`). Without them a test says so and passes,
//! except under `CI=true`, where it fails. Every mount and freeze is undone by a guard's
//! `Drop`, panics included, in the right order: unfreeze, kill the server, unmount.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{code, Launch, Proc, ADMIN};
use serde_json::{json, Value};

/// Whether a prerequisite is there; without it the test passes with a note, or fails in CI.
fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and this test cannot run: {what}"
    );
    eprintln!("skipped: {what}");
    false
}

/// Runs a command; Ok if it exited 0, else its stderr.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

/// A file system mounted on a temporary directory; unmounted on drop.
struct Mount {
    point: PathBuf,
    _root: tempfile::TempDir,
}

impl Mount {
    /// A tmpfs of `size` (as `mount -o size=` takes it).
    fn tmpfs(size: &str) -> Result<Mount, String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let point = root.path().join("mnt");
        std::fs::create_dir(&point).map_err(|e| e.to_string())?;
        let point_arg = point.display().to_string();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                &point_arg,
            ],
        )?;
        Ok(Mount { point, _root: root })
    }

    /// An ext4 file system of `mib` MiB in an image file, loop-mounted.
    fn ext4(mib: u64) -> Result<Mount, String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = root.path().join("disk.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib * 1024 * 1024))
            .map_err(|e| e.to_string())?;
        let image_arg = image.display().to_string();
        run("mkfs.ext4", &["-q", "-F", &image_arg])?;
        let point = root.path().join("mnt");
        std::fs::create_dir(&point).map_err(|e| e.to_string())?;
        let point_arg = point.display().to_string();
        run("mount", &["-o", "loop", &image_arg, &point_arg])?;
        Ok(Mount { point, _root: root })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let point = self.point.display().to_string();
        for _ in 0..50 {
            if run("umount", &[&point]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Still busy after 5 s: detach it lazily rather than leave it mounted.
        let _ = run("umount", &["-l", &point]);
    }
}

/// A frozen file system (`fsfreeze -f`); thawed on drop.
struct Frozen(String);

impl Frozen {
    fn new(point: &Path) -> Result<Frozen, String> {
        let point = point.display().to_string();
        run("fsfreeze", &["-f", &point])?;
        Ok(Frozen(point))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = run("fsfreeze", &["-u", &self.0]);
    }
}

fn create_event(proc: &Proc, id: &str, sections: Value) {
    let body = json!({"id": id, "name": "Sick machine", "sections": sections});
    let (status, reply) = proc.call("POST", "/v1/events", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{reply}");
}

fn ga(id: &str, capacity: u64) -> Value {
    json!({"id": id, "name": id, "price_cents": 100, "capacity": capacity})
}

fn hold_body(user: &str, section: &str, qty: u64) -> Value {
    json!({"user_id": user, "items": [{"section_id": section, "qty": qty}]})
}

/// The shard number in a hold or booking id (`h-<shard>-<n>`).
fn shard_of(id: &str) -> usize {
    id.split('-')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an id h-<shard>-<n>")
}

/// Polls until `f` gives `Some`, at most `limit`; panics with `what` and the server's log.
fn wait_for<T>(proc: &Proc, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; the server's log:\n{}",
            proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `name{shard="N"}` in a Prometheus text page.
fn metric(page: &str, name: &str, shard: usize) -> Option<f64> {
    let prefix = format!("{name}{{shard=\"{shard}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn scrape(proc: &Proc) -> String {
    let (status, page) = proc.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    page.as_str().expect("metrics are text").to_string()
}

fn shard_entry(ready: &Value, shard: usize) -> &Value {
    ready["shards"]
        .as_array()
        .expect("a shards list")
        .iter()
        .find(|s| s["shard"] == shard)
        .unwrap_or_else(|| panic!("shard {shard} missing from {ready}"))
}

#[test]
fn a_frozen_disk_turns_ready_503_naming_the_shard_while_health_stays_200() {
    let mount = match Mount::ext4(32) {
        Ok(mount) => mount,
        Err(e) => {
            require(
                &format!("a loop-mounted ext4 image (needs root): {e}"),
                false,
            );
            return;
        }
    };
    let proc = Proc::start(
        &mount.point.join("data"),
        &Launch {
            shards: Some(2),
            ..Launch::default()
        },
    );
    create_event(&proc, "frozen", json!([ga("ga", 1000)]));
    let path = "/v1/events/frozen/holds";
    let (status, hold) = proc.call("POST", path, Some(ADMIN), Some(&hold_body("a", "ga", 1)));
    assert_eq!(status, 201, "{hold}");
    let shard = shard_of(hold["id"].as_str().unwrap());
    let other = 1 - shard;

    let frozen = Frozen::new(&mount.point).expect("fsfreeze -f");
    // A hold whose write and fdatasync cannot finish while the disk is frozen.
    let port = proc.port;
    let stuck = std::thread::spawn(move || {
        harness::request(
            port,
            "POST",
            path,
            Some(ADMIN),
            Some(&hold_body("b", "ga", 1)),
        )
    });
    let ready = wait_for(
        &proc,
        Duration::from_secs(30),
        "/ready reports a stall",
        || {
            let (status, ready) = proc.call("GET", "/ready", None, None);
            (status == 503).then_some(ready)
        },
    );
    println!("/ready with the disk frozen: {ready}");
    let entry = shard_entry(&ready, shard);
    assert_eq!(entry["status"], "stalled", "{ready}");
    let reason = entry["reason"].as_str().expect("a reason");
    assert!(reason.contains(&format!("shard {shard}")), "{reason}");
    assert_eq!(ready["status"], "stalled", "{ready}");
    assert_eq!(shard_entry(&ready, other)["status"], "ready", "{ready}");
    // Alive all the same, and the age of the unsynced batch is there to see.
    assert_eq!(proc.call("GET", "/health", None, None).0, 200);
    let age = metric(&scrape(&proc), "boxoffice_wal_unsynced_age_seconds", shard)
        .expect("the unsynced age metric");
    assert!(age >= 5.0, "the stalled batch's age is {age} s");
    assert!(
        !stuck.is_finished(),
        "a hold was answered with the disk frozen"
    );

    drop(frozen);
    let (status, reply) = stuck.join().unwrap().expect("the stuck hold is answered");
    assert_eq!(status, 201, "the hold queued during the freeze: {reply}");
    wait_for(
        &proc,
        Duration::from_secs(10),
        "/ready 200 after the thaw",
        || (proc.call("GET", "/ready", None, None).0 == 200).then_some(()),
    );
    let page = scrape(&proc);
    assert_eq!(
        metric(&page, "boxoffice_wal_unsynced_age_seconds", shard),
        Some(0.0)
    );
    let (status, _) = proc.call("POST", path, Some(ADMIN), Some(&hold_body("c", "ga", 1)));
    assert_eq!(status, 201);
    let (_, event) = proc.call("GET", "/v1/events/frozen", None, None);
    assert_eq!(event["sections"][0]["held"], 3, "{event}");
    drop(proc);
    drop(mount);
}

/// The libfaketime library, if installed.
fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

#[test]
fn a_wall_clock_an_hour_behind_the_log_still_expires_holds() {
    let Some(faketime) = libfaketime() else {
        require("libfaketime (Debian package libfaketime)", false);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch {
        shards: Some(1),
        ..Launch::default()
    };
    let proc = Proc::start(dir.path(), &launch);
    create_event(&proc, "late", json!([ga("ga", 10)]));
    let (status, first) = proc.call(
        "POST",
        "/v1/events/late/holds",
        Some(ADMIN),
        Some(&hold_body("a", "ga", 1)),
    );
    assert_eq!(status, 201, "{first}");
    assert_eq!(proc.terminate(), Some(0));

    // The same data, the wall clock stepped back an hour (the monotonic clock untouched,
    // as an NTP step leaves it).
    let stepped = Launch {
        env: vec![
            ("LD_PRELOAD".into(), faketime.display().to_string()),
            ("FAKETIME".into(), "-3600".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ],
        ..launch
    };
    let proc = Proc::start(dir.path(), &stepped);
    wait_for(&proc, Duration::from_secs(5), "the clock warning", || {
        proc.log_tail()
            .contains("the wall clock is behind the log's time")
            .then_some(())
    });
    let body = json!({"user_id": "b", "items": [{"section_id": "ga", "qty": 2}], "ttl_seconds": 2});
    let (status, hold) = proc.call("POST", "/v1/events/late/holds", Some(ADMIN), Some(&body));
    assert_eq!(status, 201, "{hold}");
    let id = hold["id"].as_str().unwrap().to_string();
    let expired = wait_for(
        &proc,
        Duration::from_secs(15),
        "the 2 s hold expires",
        || {
            let (status, hold) = proc.call("GET", &format!("/v1/holds/{id}"), Some(ADMIN), None);
            assert_eq!(status, 200, "{hold}");
            (hold["status"] == "expired").then_some(hold)
        },
    );
    println!("with the wall clock 1 h behind the log: {expired}");
    let (status, reply) = proc.call(
        "POST",
        &format!("/v1/holds/{id}/confirm"),
        Some(ADMIN),
        Some(&json!({})),
    );
    assert_eq!((status, code(&reply)), (410, "hold_expired"), "{reply}");
    // Its two tickets are back on sale; the first hold (600 s) still holds its one.
    let inventory = harness::check_inventory(proc.port, "late");
    let ga = inventory.section("ga");
    assert_eq!((ga.available, ga.held, ga.sold), (9, 1, 0), "{inventory:?}");
    // And the expiry is a durable decision: a restart (still behind) sees it too.
    assert_eq!(proc.terminate(), Some(0));
    let proc = Proc::start(dir.path(), &stepped);
    let (_, hold) = proc.call("GET", &format!("/v1/holds/{id}"), Some(ADMIN), None);
    assert_eq!(hold["status"], "expired", "{hold}");
}

/// Fills the file system under `dir` with a ballast file until a write fails.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("the ballast file");
    let chunk = vec![0x42u8; 64 * 1024];
    for size in [chunk.len(), 4096, 512] {
        while file.write_all(&chunk[..size]).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_refuses_writes_then_heals_without_a_restart() {
    let mount = match Mount::tmpfs("16m") {
        Ok(mount) => mount,
        Err(e) => {
            require(&format!("mounting a tmpfs needs root: {e}"), false);
            return;
        }
    };
    let dir = mount.point.join("data");
    let launch = Launch {
        shards: Some(2),
        ..Launch::default()
    };
    let path = "/v1/events/full/holds";
    let proc = Proc::start(&dir, &launch);
    create_event(&proc, "full", json!([ga("ga", 1_000_000)]));
    let (status, first) = proc.call("POST", path, Some(ADMIN), Some(&hold_body("u0", "ga", 1)));
    assert_eq!(status, 201, "{first}");
    let first = first["id"].as_str().unwrap().to_string();
    let shard = shard_of(&first);
    let mut acked = vec![first];
    // A restart cuts the zeros the log reserved after the last record, so the disk fills
    // at the records themselves, not a megabyte of reserved space later.
    assert_eq!(proc.terminate(), Some(0));
    let proc = Proc::start(&dir, &launch);
    let auth = format!("Bearer {ADMIN}");
    let hold = |i: usize| {
        let body = hold_body(&format!("u{}", i % 50), "ga", 1).to_string();
        harness::send(
            proc.port,
            "POST",
            path,
            &[("authorization", &auth)],
            Some(&body),
        )
        .expect("the server answers")
    };
    let ballast = fill(&mount.point);
    let mut refused = None;
    for i in 1..20_000 {
        let reply = hold(i);
        match reply.status {
            201 => acked.push(reply.body["id"].as_str().unwrap().to_string()),
            503 => {
                refused = Some(reply);
                break;
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    let refused = refused.expect("the disk never filled: no fault injected");
    println!(
        "full disk: {} holds acknowledged after the ballast, then 503: {}",
        acked.len() - 1,
        refused.body
    );
    assert_eq!(refused.code(), "unavailable", "{}", refused.body);
    assert!(
        refused.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    // Still full: refused again, with no restart in sight.
    let again = hold(0);
    assert_eq!((again.status, again.code()), (503, "unavailable"));
    let (status, ready) = proc.call("GET", "/ready", None, None);
    assert_eq!(status, 503, "{ready}");
    let entry = shard_entry(&ready, shard);
    assert_eq!(entry["status"], "full", "{ready}");
    assert!(
        entry["reason"].as_str().unwrap().contains("no space"),
        "{ready}"
    );
    assert_eq!(ready["status"], "failed", "{ready}");
    assert_eq!(shard_entry(&ready, 1 - shard)["status"], "ready", "{ready}");
    // Reads are served from durable state meanwhile.
    let (status, event) = proc.call("GET", "/v1/events/full", None, None);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["sections"][0]["held"], acked.len() as u64, "{event}");

    // Space again: the same process takes holds again.
    std::fs::remove_file(&ballast).unwrap();
    let pid = proc.pid();
    let resumed = wait_for(
        &proc,
        Duration::from_secs(15),
        "holds accepted again",
        || {
            let reply = hold(acked.len());
            match reply.status {
                201 => Some(reply.body["id"].as_str().unwrap().to_string()),
                503 => None,
                other => panic!("unexpected {other}: {}", reply.body),
            }
        },
    );
    assert_eq!(shard_of(&resumed), shard);
    acked.push(resumed);
    assert_eq!(proc.pid(), pid);
    assert_eq!(proc.call("GET", "/ready", None, None).0, 200);
    for i in 0..20 {
        let reply = hold(i);
        assert_eq!(reply.status, 201, "{}", reply.body);
        acked.push(reply.body["id"].as_str().unwrap().to_string());
    }

    // Everything acknowledged survives kill -9 and a restart.
    proc.kill9();
    let proc = Proc::start(&dir, &launch);
    for id in &acked {
        let (status, hold) = proc.call("GET", &format!("/v1/holds/{id}"), Some(ADMIN), None);
        assert_eq!(
            (status, &hold["status"]),
            (200, &json!("held")),
            "{id}: {hold}"
        );
    }
    let inventory = harness::check_inventory(proc.port, "full");
    assert_eq!(inventory.section("ga").held, acked.len() as u64);
    drop(proc);
    drop(mount);
}

#[test]
fn metrics_count_holds_placed_confirmed_released_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::start(
        dir.path(),
        &Launch {
            shards: Some(2),
            ..Launch::default()
        },
    );
    create_event(&proc, "counted", json!([ga("ga", 100), ga("vip", 1)]));
    let place = |user: &str, ttl: Option<u64>| {
        let mut body = hold_body(user, "ga", 1);
        if let Some(ttl) = ttl {
            body["ttl_seconds"] = json!(ttl);
        }
        let (status, hold) =
            proc.call("POST", "/v1/events/counted/holds", Some(ADMIN), Some(&body));
        assert_eq!(status, 201, "{hold}");
        hold["id"].as_str().unwrap().to_string()
    };
    let confirmed = place("a", None);
    let released = place("b", None);
    let _kept = place("c", None);
    let expiring = place("d", Some(1));
    let shard = shard_of(&confirmed);
    let (status, _) = proc.call(
        "POST",
        &format!("/v1/holds/{confirmed}/confirm"),
        Some(ADMIN),
        Some(&json!({})),
    );
    assert_eq!(status, 201);
    assert_eq!(
        proc.call(
            "DELETE",
            &format!("/v1/holds/{released}"),
            Some(ADMIN),
            None
        )
        .0,
        200
    );
    // Rejections are not decisions: a second confirm counts nothing.
    assert_eq!(
        proc.call(
            "POST",
            &format!("/v1/holds/{confirmed}/confirm"),
            Some(ADMIN),
            Some(&json!({}))
        )
        .0,
        409
    );
    // The one VIP ticket bought: that section is sold out.
    let buy = json!({"user_id": "e", "items": [{"section_id": "vip", "qty": 1}]});
    let (status, booking) = proc.call(
        "POST",
        "/v1/events/counted/bookings",
        Some(ADMIN),
        Some(&buy),
    );
    assert_eq!(status, 201, "{booking}");

    let page = wait_for(
        &proc,
        Duration::from_secs(10),
        "the expiry and the gauge",
        || {
            let page = scrape(&proc);
            (metric(&page, "boxoffice_holds_expired_total", shard) == Some(1.0)
                && metric(&page, "boxoffice_sections_sold_out", shard) == Some(1.0))
            .then_some(page)
        },
    );
    let (status, hold) = proc.call("GET", &format!("/v1/holds/{expiring}"), Some(ADMIN), None);
    assert_eq!((status, &hold["status"]), (200, &json!("expired")));
    for (name, want) in [
        ("boxoffice_holds_placed_total", 4.0),
        ("boxoffice_holds_confirmed_total", 1.0),
        ("boxoffice_holds_released_total", 1.0),
        ("boxoffice_holds_expired_total", 1.0),
        ("boxoffice_purchases_total", 1.0),
        ("boxoffice_sections_sold_out", 1.0),
        ("boxoffice_wal_unsynced_age_seconds", f64::NAN),
        ("boxoffice_shard_loop_gap_seconds", f64::NAN),
    ] {
        let got = metric(&page, name, shard);
        if want.is_nan() {
            assert!(got.is_some(), "{name} missing:\n{page}");
        } else {
            assert_eq!(got, Some(want), "{name} on shard {shard}:\n{page}");
        }
        // The other shard made none of these decisions.
        let other = metric(&page, name, 1 - shard);
        assert!(
            want.is_nan() || other.unwrap_or(0.0) == 0.0,
            "{name} on shard {}: {other:?}",
            1 - shard
        );
    }
}
