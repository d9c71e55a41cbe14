//! `rbuild inspect` of containers (`--type container`, `container inspect`): docker's JSON
//! shape from the record and the recorded spec, for a running and an exited container.

mod common;
mod running_support;

use common::TestEnv;
use running_support::Running;
use serde_json::Value;

fn inspect(env: &TestEnv, args: &[&str]) -> Value {
    let out = env.ok(args);
    let v: Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

#[test]
fn inspect_shows_a_running_and_an_exited_container_as_docker() {
    let env = TestEnv::with_base("bb");
    let shared = env.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/data:ro", shared.display());
    let running = Running::start(
        &env,
        "web",
        &[
            "-e",
            "A=1",
            "-w",
            "/srv",
            "-l",
            "tier=front",
            "-v",
            &volume,
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--ulimit",
            "nofile=100:200",
            "bb",
            "sleep",
            "1000",
        ],
    );
    let id = running.id();
    let v = inspect(&env, &["inspect", "--type", "container", "web"]);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "/web");
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"], serde_json::json!(["1000"]));
    let state = &v["State"];
    assert_eq!(state["Status"], "running");
    assert_eq!(state["Running"], true);
    assert_eq!(state["OOMKilled"], false);
    let pid = state["Pid"].as_i64().unwrap();
    // The start is announced just before PID 1's exec (as runc's): it may still be rbuild's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        if cmdline == b"sleep\x001000\x00" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "State.Pid is the container's PID 1: {cmdline:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(v["Image"].as_str().unwrap().starts_with("sha256:"));
    let config = &v["Config"];
    assert_eq!(config["Image"], "bb");
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["Labels"]["tier"], "front");
    assert!(config["Env"].as_array().unwrap().iter().any(|e| e == "A=1"));
    assert_eq!(config["Cmd"], serde_json::json!(["sleep", "1000"]));
    let host = &v["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(
        host["MemorySwap"],
        128 << 20,
        "docker's default: twice the memory"
    );
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 50);
    assert_eq!(host["NetworkMode"], "bridge");
    assert_eq!(
        host["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 100, "Hard": 200}])
    );
    let mount = &v["Mounts"][0];
    assert_eq!(mount["Type"], "bind");
    assert_eq!(mount["Source"], shared.display().to_string());
    assert_eq!(mount["Destination"], "/data");
    assert_eq!(mount["RW"], false);
    // docker lists the default network as `bridge`, with the address at the top too.
    let networks = &v["NetworkSettings"]["Networks"];
    assert_eq!(networks.as_object().unwrap().len(), 1, "{networks}");
    assert_ne!(networks["bridge"]["IPAddress"], "", "{networks}");
    assert_eq!(
        v["NetworkSettings"]["IPAddress"],
        networks["bridge"]["IPAddress"]
    );
    // `container inspect`, a template, and the name without --type (no image "web").
    let formatted = env.ok(&[
        "container",
        "inspect",
        "-f",
        "{{.State.Status}} {{.Name}} {{.HostConfig.PidsLimit}}",
        "web",
    ]);
    assert_eq!(formatted, "running /web 50\n");
    assert_eq!(env.ok(&["inspect", "-f", "{{.Name}}", &id[..12]]), "/web\n");
    drop(running);

    env.run(&["run", "--name", "done", "bb", "sh", "-c", "exit 3"]);
    let v = inspect(&env, &["container", "inspect", "done"]);
    let state = &v["State"];
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["Running"], false);
    assert_eq!(state["ExitCode"], 3);
    assert_eq!(state["Pid"], 0);
    assert_ne!(state["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(v["HostConfig"]["Memory"], 0);
    assert_eq!(v["HostConfig"]["PidsLimit"], 2048);
}

#[test]
fn inspect_type_picks_the_kind_of_object() {
    let env = TestEnv::with_base("busy");
    env.ok(&["run", "--name", "ctr", "busy", "true"]);
    // Names that are not hex: a hex name would also match ID prefixes (as in docker).
    // An image by default, a container with --type container.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.RepoTags}}", "busy"]),
        "[busy:latest]\n"
    );
    let err = env.fails(&["inspect", "--type", "container", "busy"]);
    assert!(err.contains("No such container: busy"), "{err}");
    let err = env.fails(&["inspect", "--type", "image", "ctr"]);
    assert!(err.contains("ctr"), "{err}");
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "ctr"]),
        "exited\n"
    );
    // Neither: the image lookup's error, as before.
    let err = env.fails(&["inspect", "nothing-here"]);
    assert!(err.contains("nothing-here"), "{err}");
}

/// Regression: a container whose name is a prefix of an image's ID (`d` for an image
/// `sha256:d…`) was inspected as that image without `--type` (device_cgroup_v2 failed on
/// `inspect -f {{.State.Pid}} d` whenever the base image's ID began with `d`). The name of a
/// container wins over an ID prefix; the image is still found by its full ID.
#[test]
fn bug_container_named_like_an_image_id_prefix_was_inspected_as_the_image() {
    let env = TestEnv::with_base("busy");
    let id = env.ok(&["inspect", "-f", "{{.Id}}", "busy"]);
    let hex = id.trim().trim_start_matches("sha256:");
    let prefix = &hex[..1];
    env.ok(&["run", "--name", prefix, "busy", "true"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", prefix]),
        "exited\n"
    );
    assert_eq!(env.ok(&["inspect", "-f", "{{.Id}}", hex]), id);
    assert_eq!(
        env.ok(&["inspect", "--type", "image", "-f", "{{.Id}}", prefix]),
        id
    );
}
