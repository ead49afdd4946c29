//! The built binary: start-up failures name the flag, a started proxy serves, SIGTERM drains.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_azure-openai-proxy");

fn fails_naming(args: &[&str], flag: &str) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("AOP_API_KEYS")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(flag), "{args:?}: {err}");
}

#[test]
fn bad_configuration_fails_at_start_naming_the_flag() {
    fails_naming(&["--port", "99999"], "--port");
    fails_naming(&["--host", "0.0.0.0"], "--allow-unauthenticated");
    fails_naming(&["--upstream-url", "localhost:8080"], "--upstream-url");
    fails_naming(
        &["--extra-parameters-default", "allow"],
        "--extra-parameters-default",
    );
    fails_naming(&["--log-format", "xml"], "--log-format");
    fails_naming(&["--api-key-file", "/does/not/exist"], "--api-key-file");
    fails_naming(
        &["--upstream-connect-timeout", "abc"],
        "--upstream-connect-timeout",
    );
    let out = Command::new(BIN)
        .args(["--host", "0.0.0.0"])
        .env("AOP_API_KEYS", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn check_config_validates_and_exits() {
    let ok = Command::new(BIN)
        .args([
            "--check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-engines.toml"),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration OK"));
    let bad = Command::new(BIN)
        .args(["--check-config", "--upstream-url", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--upstream-url"));
}

#[test]
fn help_lists_flags_with_their_environment_variables() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--upstream-url",
        "AOP_UPSTREAM_URL",
        "--api-key",
        "--allow-unauthenticated",
        "--extra-parameters-default",
    ] {
        assert!(help.contains(needle), "{needle}");
    }
}

#[test]
fn serves_and_exits_cleanly_on_sigterm() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .args([
            "--port",
            &port.to_string(),
            "--upstream-url",
            "http://127.0.0.1:9",
        ])
        .env("AOP_API_KEYS", "secret-key-1")
        .env("AOP_HOST", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served = false;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /chat/completions HTTP/1.1\r\nhost: x\r\napi-key: nope\r\nconnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
            assert!(answer.contains("\"code\":\"401\""), "{answer}");
            // An authorised request with a prompt (the engine is down: 503).
            let body = r#"{"messages":[{"role":"user","content":"TOP-SECRET-PROMPT"}]}"#;
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                s,
                "POST /chat/completions?api-version=2024-05-01-preview HTTP/1.1\r\nhost: x\r\napi-key: secret-key-1\r\nauthorization: Bearer secret-key-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(served, "the proxy never listened");
    send_sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut log).unwrap();
    let log = strip_ansi(&log);
    assert!(!log.contains("secret-key-1"), "keys never reach the log");
    assert!(
        !log.contains("TOP-SECRET-PROMPT"),
        "prompts never reach the log"
    );
    assert!(
        log.contains("POST") && log.contains("status=503"),
        "the request is logged: {log}"
    );
    assert!(log.contains("shutting down"), "{log}");
}

fn send_sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
