//! The Dockerfile, read as Docker would (instructions, line continuations,
//! JSON arrays): multi-stage, a non-root runtime user, the shipped policies
//! as the default, a healthcheck; its build and run steps are the ones
//! docs/deploy.md gives, and its command and healthcheck work on the binary
//! this test suite built (no container engine runs here).

use super::*;

struct Instr {
    op: String,
    args: String,
}

fn dockerfile() -> Vec<Instr> {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut line = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if line.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(cont) = t.strip_suffix('\\') {
            line.push_str(cont);
            line.push(' ');
            continue;
        }
        line.push_str(t);
        let (op, args) = line.split_once(' ').unwrap();
        out.push(Instr {
            op: op.to_uppercase(),
            args: args.trim().to_string(),
        });
        line.clear();
    }
    out
}

fn json_args(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON array: {text}: {e}"))
}

fn docs(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}

#[tokio::test]
async fn the_dockerfiles_steps_are_the_documented_ones_and_its_command_serves() {
    let steps = dockerfile();
    let stages: Vec<&Instr> = steps.iter().filter(|i| i.op == "FROM").collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let runtime_at = steps.iter().rposition(|i| i.op == "FROM").unwrap();
    let (build, runtime) = steps.split_at(runtime_at);
    let of = |stage: &[Instr], op: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|i| i.op == op)
            .map(|i| i.args.clone())
            .collect()
    };

    // The build runs the documented build commands: the profile-guided
    // build by default, the plain one with `--build-arg PGO=0`.
    let build_cmd = "cargo build --release --locked";
    let pgo_cmd = "deploy/pgo-build.sh";
    assert!(
        of(build, "ARG").iter().any(|a| a == "PGO=1"),
        "PGO on by default"
    );
    let run = of(build, "RUN");
    assert!(
        run.iter()
            .any(|r| r.contains(build_cmd) && r.contains(pgo_cmd))
    );
    let deploy_md = docs("docs/deploy.md");
    assert!(deploy_md.contains(build_cmd) && deploy_md.contains(pgo_cmd));
    // The script is there, runnable, and trains with the bench target that
    // `.ci/run` runs (bench/pgo_train.rs).
    let script = repo(pgo_cmd);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&script).unwrap().permissions());
    assert!(mode & 0o111 != 0, "{pgo_cmd} is executable");
    let script = std::fs::read_to_string(script).unwrap();
    assert!(script.contains("--bench pgo_train") && script.contains("target/pgo"));
    assert!(docs("Cargo.toml").contains("name = \"pgo_train\""));
    assert!(docs(".ci/run").contains("--bench pgo_train"));
    assert!(deploy_md.contains("docker build -t switchyard:0.1.0 ."));
    assert!(deploy_md.contains("docker run --rm -p 8080:8080 switchyard:0.1.0"));
    assert!(docs("README.md").contains("(docs/deploy.md)"));

    // The runtime: a non-root user, the binary from the build, the policies.
    let user = of(runtime, "USER")
        .pop()
        .expect("USER in the runtime stage");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    let copies = of(runtime, "COPY");
    let (src, dest) = copies
        .iter()
        .filter(|c| !c.starts_with("--from"))
        .find_map(|c| c.split_once(' '))
        .expect("COPY of the policies");
    assert_eq!(src, "policies");
    let entry = json_args(&of(runtime, "ENTRYPOINT").pop().unwrap());
    let cmd = json_args(&of(runtime, "CMD").pop().unwrap());
    assert_eq!(entry, ["switchyard"]);
    let policies_at = cmd.iter().position(|a| a == "--policies").unwrap();
    assert_eq!(cmd[policies_at + 1], dest);
    // The documented run without Docker: the same command, from the repository.
    let local: Vec<String> = cmd
        .iter()
        .map(|a| {
            if a == dest {
                src.to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let documented = format!("target/pgo/switchyard {}", local.join(" "));
    assert!(
        deploy_md.contains(&documented),
        "docs/deploy.md gives {documented:?}"
    );

    // That command on the binary built for these tests, on a free port.
    let listen = cmd.iter().position(|a| a == "--listen").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = local.clone();
    args[listen + 1] = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(&args)
        .current_dir(repo(""))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    assert!(
        answers(&http, &format!("{base}/healthz")).await,
        "the image's command serves /healthz"
    );
    assert!(answers(&http, &format!("{base}/readyz")).await);

    // The HEALTHCHECK's command: 0 on this gateway, non-zero on a closed port.
    let hc = of(runtime, "HEALTHCHECK").pop().unwrap();
    let check = json_args(&hc[hc.find("CMD ").unwrap() + 4..]);
    let exposed = of(runtime, "EXPOSE").pop().unwrap();
    let run_check = |port: u16| {
        let script = check[2].replace(&format!("/{exposed}"), &format!("/{port}"));
        std::process::Command::new(&check[0])
            .arg(&check[1])
            .arg(script)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    };
    assert!(check[2].contains(&format!("/{exposed}")) && check[2].contains("/healthz"));
    assert!(run_check(port).success());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(!run_check(closed).success());

    // SIGTERM (what Kubernetes sends after preStop): not ready, then gone.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually(async || {
        let r = http.get(format!("{base}/readyz")).send().await;
        r.is_ok_and(|r| r.status() == 503)
    })
    .await;
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    assert!(exit.expect("stops after the drain").unwrap().success());
}
