//! The appliance as Proxmox runs it: PID 1 of an unprivileged LXC container (`unprivileged=1`,
//! `ostype=unmanaged`, the default entrypoint `/sbin/init`, which the template links to the
//! appliance, `net1=name=eth1,bridge=...,ip=10.20.0.1/24` and `net0=name=eth0,...` on the WAN). [`Container`] builds one for a lab in the lab's temp dir
//! under a private lxcpath (so parallel labs and other checkouts never meet), starts it with
//! `lxc-start` and waits for the appliance to listen, stops it with `lxc-stop` (SIGPWR, as
//! Proxmox's shutdown), and on drop kills and destroys it with its files, panicking test or not.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::Lab;
//! use proximity_tests::lxc::Container;
//! let lab = Lab::builder().appliance_netns(false).clients(1).build()?;
//! let container = Container::create(&lab, &Container::config(&lab))?;
//! container.start()?;
//! lab.client(0).udhcpc().obtain()?;
//! container.stop()?;
//! # Ok(()) }
//! ```
//!
//! Every `lxc-*` command runs inside the lab's switch namespace: `lxc-start` there creates the
//! host ends of the container's veths next to the lab's bridges, and LXC's command socket is an
//! abstract unix socket, which belongs to a network namespace, so `lxc-info` or `lxc-stop` run
//! anywhere else finds no container. `lxc-start` runs in the foreground (`-F`) as our child, with
//! no console: the appliance's stdout and stderr are `lxc-start`'s, a log file. Its exit is the
//! container's end, and LXC gives the container's init SIGKILL as parent-death signal, so the
//! container never outlives the `lxc-start` that the lab's namespace sweep kills.
//!
//! Needs root and `lxc` (apt-get install lxc); without them creating a container fails.
//!
//! - `rootfs`: the static binary, the rootfs and the sub-id ranges.

pub mod rootfs;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use proximity_config::{MacAddr, RawConfig};

pub use rootfs::{STATIC_BIN_ENV, STATIC_BUILD, ensure_subids, is_static, static_binary};

use crate::appliance::READY_LINE;
use crate::logs::excerpt;
use crate::process::{describe, kill_child, run, spawn_logged, wait_exit};
use crate::topology::{GATEWAY, KEEP_ENV, LAN_PREFIX, Lab};
use crate::wait;
use crate::wan::{WAN_ADDRESS, WAN_PREFIX, WAN_UPSTREAM};

/// First host uid and gid of the container's id map, and how many it maps: Proxmox's
/// `unprivileged=1` (root in the container is uid 100000 on the host).
pub const ID_BASE: u32 = 100_000;
pub const ID_COUNT: u32 = 65_536;
/// The container's init, a symlink to the appliance (the template's layout, `proximity-image`).
pub const INIT: &str = proximity_image::INIT;
/// The appliance in the rootfs.
pub const APPLIANCE: &str = proximity_image::APPLIANCE;
/// Its config file in the rootfs.
pub const CONFIG: &str = proximity_image::CONFIG;
/// Its state directory in the rootfs (the default of `state.dir`; a mount point on Proxmox).
pub const STATE_DIR: &str = proximity_image::STATE_DIR;
/// `nft` in the rootfs (with its libraries at their host paths): what NAT drives.
pub const NFT: &str = proximity_image::NFT;
/// The container's interface on the lab's LAN bridge, and on its WAN bridge (DESIGN.md's names).
pub const LAN_IFACE: &str = "eth1";
pub const WAN_IFACE: &str = "eth0";
/// The container's MACs, set as Proxmox sets `hwaddr`: locally administered, apart from the
/// clients' `02:70:78:00:..` and the outside host's `02:70:78:ff:..`.
pub const LAN_MAC: MacAddr = MacAddr([0x02, 0x70, 0x78, 0xfe, 0x00, 0x01]);
pub const WAN_MAC: MacAddr = MacAddr([0x02, 0x70, 0x78, 0xfe, 0x00, 0x02]);
/// From `lxc-start` to the appliance's [`READY_LINE`]: LXC's setup takes a fraction of a second,
/// the appliance well under one.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// From `lxc-stop` to the end of `lxc-start`; a graceful stop that takes longer is a bug.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Detail of `lxc-start`'s own log (`-l`): enough to see each setup step and why one failed.
const LXC_LOG_LEVEL: &str = "INFO";
/// Where LXC keeps a lock directory per lxcpath (`<this><lxcpath>/.<name>`), which
/// `lxc-destroy` leaves behind.
const LXC_LOCK_DIR: &str = "/run/lxc/lock";

/// One appliance container of a lab; borrows the lab, so it is dropped (stopped, destroyed)
/// before the lab's namespaces go.
#[derive(Debug)]
pub struct Container<'l> {
    lab: &'l Lab,
    name: String,
    /// The private `lxc-* -P` directory; the container's own directory is `lxcpath/name`.
    lxcpath: PathBuf,
    rootfs: PathBuf,
    /// The state directory as the host sees it (inside the rootfs).
    state_dir: PathBuf,
    /// The appliance's stdout and stderr (`lxc-start`'s), outside `lxcpath`, so the lab can show
    /// it after the container is destroyed.
    console_log: PathBuf,
    /// `lxc-start -o`: LXC's own account of the start and stop.
    lxc_log: PathBuf,
    /// `lxc-start -F`: runs as long as the container does.
    monitor: Mutex<Option<Child>>,
}

impl<'l> Container<'l> {
    /// [`Lab::config`] as it is inside the container: LAN interface [`LAN_IFACE`], WAN
    /// interface [`WAN_IFACE`], state in [`STATE_DIR`]. Tests change what they test.
    pub fn config(lab: &Lab) -> RawConfig {
        let mut config = lab.config();
        config.lan.interface = LAN_IFACE.to_owned();
        config.wan.interface = WAN_IFACE.to_owned();
        config.state.dir = STATE_DIR.to_owned();
        config
    }

    /// Builds the container for `lab` (built without an appliance namespace) with `config`
    /// (whose `state.dir` is a path inside the container): rootfs, LXC config, sub-ids. Not
    /// started yet.
    pub fn create(lab: &'l Lab, config: &RawConfig) -> Result<Container<'l>> {
        // A second appliance on the bridge would answer as the same gateway.
        ensure!(
            !lab.has_appliance_netns(),
            "the container is the lab's appliance: build the lab with Lab::builder().appliance_netns(false)"
        );
        run(Command::new("lxc-start").arg("--version"))
            .context("the container lab needs LXC's `lxc-start` (apt-get install lxc)")?;
        let binary = static_binary()?;
        ensure_subids()?;
        // The container's root (host uid 100000) must pass through every directory above its
        // rootfs; execute-only lets it through without showing what is in them.
        let lxcpath = lab.dir().join("lxc");
        for dir in [lab.dir(), &lxcpath] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("cannot open {} to the container's root", dir.display()))?;
        }
        let name = lab.names().container();
        let rootfs = lxcpath.join(&name).join("rootfs");
        let container = Container {
            lab,
            state_dir: rootfs::host_path(&rootfs, &config.state.dir)?,
            rootfs,
            console_log: lab.dir().join("container.log"),
            lxc_log: lab.dir().join("lxc-start.log"),
            lxcpath,
            name,
            monitor: Mutex::new(None),
        };
        // From here on a failure drops `container`, which removes what was made.
        lab.logs().register(&format!("appliance in container {}", container.name), &container.console_log);
        lab.logs().register("lxc-start", &container.lxc_log);
        rootfs::build(&container.rootfs, &binary, config)?;
        let path = container.lxcpath.join(&container.name).join("config");
        std::fs::write(&path, container.lxc_config()?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(container)
    }

    /// The LXC config: what pve-container writes for `unprivileged=1`, `ostype=unmanaged`, an
    /// entrypoint and `net1` (and `net0` when the lab has a WAN).
    fn lxc_config(&self) -> Result<String> {
        let lab = self.lab;
        let names = lab.names();
        let mut lines = vec![
            format!(
                "# The appliance container of lab {}, written by proximity-tests (src/lxc.rs).",
                lab.tag()
            ),
            format!("lxc.uts.name = {}", self.name),
            format!("lxc.rootfs.path = dir:{}", self.rootfs.display()),
            format!("lxc.idmap = u 0 {ID_BASE} {ID_COUNT}"),
            format!("lxc.idmap = g 0 {ID_BASE} {ID_COUNT}"),
            "lxc.mount.auto = proc:mixed sys:mixed".to_owned(),
            "lxc.apparmor.profile = unconfined".to_owned(),
            "# No console and no ttys: init's stdin, stdout and stderr are lxc-start's.".to_owned(),
            "lxc.console.path = none".to_owned(),
            "lxc.tty.max = 0".to_owned(),
            // Proxmox starts /sbin/init with no arguments; the appliance reads its default config.
            format!("lxc.init.cmd = {INIT}"),
        ];
        let gateway = lab.gateway_by_harness().then(|| format!("{GATEWAY}/{LAN_PREFIX}"));
        lines.extend(veth(0, lab.bridge(), &names.ifname("s", "x")?, LAN_IFACE, LAN_MAC, gateway, None));
        if let Some(wan) = lab.wan_opt() {
            // Always there in a lab without an appliance namespace (checked in `create`).
            let bridge = wan.bridge.as_deref().context("the lab's WAN has no bridge")?;
            let (address, gateway) = match wan.addressed {
                true => (Some(format!("{WAN_ADDRESS}/{WAN_PREFIX}")), Some(WAN_UPSTREAM.to_string())),
                false => (None, None),
            };
            let pair = names.ifname("m", "x")?;
            lines.extend(veth(1, bridge, &pair, WAN_IFACE, WAN_MAC, address, gateway));
        }
        Ok(lines.join("\n") + "\n")
    }

    /// `lxc-TOOL -P <lxcpath> -n <name>` inside the lab's switch namespace; add the tool's
    /// own arguments.
    pub fn lxc(&self, tool: &str) -> Command {
        let mut cmd = self.lab.switch_netns().command(&format!("lxc-{tool}"));
        cmd.arg("-P").arg(&self.lxcpath).arg("-n").arg(&self.name);
        cmd
    }

    fn monitor(&self) -> MutexGuard<'_, Option<Child>> {
        self.monitor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the container and waits until the appliance listens; fails, with the logs, if
    /// `lxc-start` exits first or the appliance is not ready within [`START_TIMEOUT`].
    pub fn start(&self) -> Result<()> {
        let mut slot = self.monitor();
        if let Some(child) = slot.as_mut() {
            if child.try_wait()?.is_none() {
                bail!("container {} is already running", self.name);
            }
        }
        let offset = std::fs::metadata(&self.console_log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = self.lxc("start");
        // -C: descriptors the test process inherited without close-on-exec (cargo's jobserver)
        // stay out of the container.
        cmd.args(["-F", "-C", "-l", LXC_LOG_LEVEL, "-o"]).arg(&self.lxc_log);
        let child = slot.insert(spawn_logged(&mut cmd, &self.console_log)?);
        let ready =
            wait::until(START_TIMEOUT, &format!("{READY_LINE:?} from container {}", self.name), || {
                if self.log_since(offset).contains(READY_LINE) {
                    return Ok(Some(()));
                }
                if let Some(status) = child.try_wait()? {
                    bail!("lxc-start exited ({status}) before the appliance said {READY_LINE:?}");
                }
                Ok(None)
            });
        ready.map_err(|e| anyhow!("{e:#}\n{}", self.diagnostics()))
    }

    /// `lxc-stop` (SIGPWR to the container's init, what Proxmox's shutdown sends), never
    /// escalating to a kill, then waits for `lxc-start` to exit; returns how long the stop took.
    /// Fails, with the logs, if the container is still running after [`STOP_TIMEOUT`].
    pub fn stop(&self) -> Result<Duration> {
        let mut slot = self.monitor();
        let child = slot.as_mut().with_context(|| format!("container {} was never started", self.name))?;
        if let Some(status) = child.try_wait()? {
            bail!("lxc-start had already exited ({status})\n{}", self.diagnostics());
        }
        let started = Instant::now();
        let timeout = STOP_TIMEOUT.as_secs().to_string();
        let stopped = run(self.lxc("stop").args(["--nokill", "-t", &timeout]))
            .and_then(|_| wait_exit(child, STOP_TIMEOUT)?.context("lxc-start is still running"));
        match stopped {
            Ok(status) => {
                ensure!(status.success(), "lxc-start exited with {status}\n{}", self.diagnostics());
                Ok(started.elapsed())
            }
            Err(e) => Err(anyhow!("{e:#}\n{}", self.diagnostics())),
        }
    }

    /// The host pid of the container's init (the appliance), from `lxc-info`.
    pub fn init_pid(&self) -> Result<u32> {
        let out = run(self.lxc("info").args(["-p", "-H"]))?;
        out.trim().parse().with_context(|| format!("lxc-info gave no pid for {}: {out:?}", self.name))
    }

    /// The container's state as `lxc-info` says it (`RUNNING`, `STOPPED`).
    pub fn state(&self) -> Result<String> {
        Ok(run(self.lxc("info").args(["-s", "-H"]))?.trim().to_owned())
    }

    /// Runs `args` (an absolute program path, there is no shell or PATH) inside the running
    /// container as its root, with `lxc-attach`; returns stdout, or an error with stderr.
    pub fn attach(&self, args: &[&str]) -> Result<String> {
        run(self.lxc("attach").arg("--clear-env").arg("--").args(args))
    }

    /// The container's name (`pxlab-<tag>-ct`), also its host name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rootfs as the host sees it.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The appliance's state directory as the host sees it (the admin token is there).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Everything the appliance wrote to stdout and stderr, over all starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.console_log).unwrap_or_default()
    }

    fn log_since(&self, offset: u64) -> String {
        let log = self.log();
        log.get(usize::try_from(offset).unwrap_or(usize::MAX)..).unwrap_or_default().to_owned()
    }

    /// The appliance's log and LXC's, for an error message.
    pub fn diagnostics(&self) -> String {
        let lxc = std::fs::read_to_string(&self.lxc_log).unwrap_or_default();
        format!(
            "----- appliance in container {} -----\n{}\n----- lxc-start ({}) -----\n{}",
            self.name,
            excerpt(&self.log()),
            self.lxc_log.display(),
            excerpt(&lxc)
        )
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let mut slot = self.monitor.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = slot.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                // lxc-stop -k first, so LXC itself ends the container and removes its cgroups;
                // killing lxc-start alone would leave those behind.
                let mut stop = self.lxc("stop");
                stop.arg("-k").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
                if stop.status().is_err() {
                    eprintln!("container {}: cannot run `{}`", self.name, describe(&stop));
                }
                if !matches!(wait_exit(child, STOP_TIMEOUT), Ok(Some(_))) {
                    kill_child(child);
                }
            }
        }
        if std::env::var_os(KEEP_ENV).is_none() {
            let _ = self.lxc("destroy").stdin(Stdio::null()).output();
            // lxc-destroy leaves the lxcpath itself, and all if it failed.
            let _ = std::fs::remove_dir_all(&self.lxcpath);
        }
        // Last, as every lxc-* command takes these locks. They are under the lab's own (unique)
        // temp dir path, so no other lab's locks are in there.
        let lab_dir = self.lab.dir();
        let _ = std::fs::remove_dir_all(
            Path::new(LXC_LOCK_DIR).join(lab_dir.strip_prefix("/").unwrap_or(lab_dir)),
        );
    }
}

/// `lxc.net.N` lines for a veth named `name` inside, on `bridge`, whose host end is `pair`, with
/// `mac`, and optionally a static address and default route, as Proxmox's `ip=`/`gw=` give.
fn veth(
    n: u8,
    bridge: &str,
    pair: &str,
    name: &str,
    mac: MacAddr,
    address: Option<String>,
    gateway: Option<String>,
) -> Vec<String> {
    let mut lines = vec![
        format!("lxc.net.{n}.type = veth"),
        format!("lxc.net.{n}.link = {bridge}"),
        format!("lxc.net.{n}.veth.pair = {pair}"),
        format!("lxc.net.{n}.name = {name}"),
        format!("lxc.net.{n}.hwaddr = {mac}"),
        format!("lxc.net.{n}.flags = up"),
    ];
    lines.extend(address.map(|a| format!("lxc.net.{n}.ipv4.address = {a}")));
    lines.extend(gateway.map(|g| format!("lxc.net.{n}.ipv4.gateway = {g}")));
    lines
}
