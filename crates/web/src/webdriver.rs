//! A headless Chromium driven through chromedriver, for the pages' tests
//! (feature `webdriver`). Without chromedriver, [`Driver::start`] says so and
//! returns `None`, unless [`REQUIRE_ENV`] is set (CI installs Chromium and
//! sets it), where that is a failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// Set where the browser tests must run.
pub const REQUIRE_ENV: &str = "PROTOLAB_REQUIRE_BROWSER";

/// Where tests save the pages' screenshots (the README's), when set.
pub const SCREENSHOTS_ENV: &str = "PROTOLAB_SCREENSHOTS";

/// chromedriver on a free port, stopped when dropped.
#[derive(Debug)]
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or says why not.
    ///
    /// # Panics
    /// Without chromedriver when [`REQUIRE_ENV`] is set; when it does not
    /// start listening within 30 s.
    pub fn start() -> Option<Driver> {
        let found = Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os(REQUIRE_ENV).is_none(),
                "{REQUIRE_ENV} is set but there is no chromedriver"
            );
            eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// A new headless browser window of `width` × `height`.
    ///
    /// # Panics
    /// When the browser does not start.
    pub async fn browser(&self, width: u32, height: u32) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")]
            }),
        );
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start a headless browser: {e}"),
        }
    }
}

/// Saves `png` as `name` in the [`SCREENSHOTS_ENV`] directory, if set.
pub fn keep_screenshot(name: &str, png: &[u8]) {
    if let Some(dir) = std::env::var_os(SCREENSHOTS_ENV)
        && let Err(e) = std::fs::write(std::path::Path::new(&dir).join(name), png)
    {
        eprintln!("cannot save {name}: {e}");
    }
}
