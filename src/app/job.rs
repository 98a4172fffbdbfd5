//! Generation and replay in a background thread, reporting through a channel: the UI
//! polls [`Job::poll`] once per frame and never waits on the models.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use burn::tensor::backend::Backend;
use image::RgbImage;

use crate::pipeline::{
    self, Event, Generator, Models, Needs, Phase, PipelineError, Plan, ReplayReport, RunRequest, RunSummary, frame_path,
};

/// Runs `body` with `$b` bound to the backend of `device` (checked available).
macro_rules! with_backend {
    ($device:expr, |$b:ident, $dev:ident| $body:expr) => {
        match $device {
            Device::Cpu => {
                type $b = burn::backend::Flex;
                let $dev: burn::tensor::Device<$b> = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            Device::Cuda => {
                type $b = burn::backend::Cuda;
                let $dev: burn::tensor::Device<$b> = Default::default();
                $body
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => unreachable!("checked by check_available"),
        }
    };
}

/// Width of the frames the job sends to the UI (the files keep full size).
pub const PREVIEW_WIDTH: u32 = 256;

/// What a binary built without the `cuda` feature says when asked for CUDA.
pub const NO_CUDA: &str = "this binary was built without CUDA: build with `cargo build --release --features cuda`";

/// Where the models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Device {
    /// burn's Flex CPU backend (bit-identical reruns).
    #[default]
    Cpu,
    /// burn-cuda; needs a build with `--features cuda`.
    Cuda,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu (burn Flex)",
            Device::Cuda => "cuda:0 (burn-cuda)",
        }
    }

    /// Whether this build can run on the device.
    pub fn available(self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Whether the device works here: for CUDA, a tiny computation on GPU 0. burn-cuda
    /// panics when the driver or NVRTC cannot be loaded; this turns that into an error that
    /// says what was missing, so a machine without a GPU gets a message, not a backtrace.
    pub fn ready(self) -> Result<(), String> {
        match self {
            Device::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda => {
                use burn::tensor::Tensor;
                use std::sync::{Arc, Mutex};
                // The driver is loaded on burn-cuda's server thread: its panic says what was
                // missing, the caller's only that the server went away. Keep the first.
                let first: Arc<Mutex<Option<String>>> = Arc::default();
                let hook = std::panic::take_hook();
                let seen = first.clone();
                std::panic::set_hook(Box::new(move |info| {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.get_or_insert_with(|| info.payload_as_str().unwrap_or("burn-cuda panicked").to_string());
                }));
                let probe = std::panic::catch_unwind(|| {
                    let device = Default::default();
                    (Tensor::<burn::backend::Cuda, 1>::ones([4], &device) * 2.0).sum().into_scalar()
                });
                std::panic::set_hook(hook);
                let why = first.lock().unwrap_or_else(|e| e.into_inner()).take();
                probe.map(|_| ()).map_err(|panic| {
                    let why = why.unwrap_or_else(|| panic_text(&panic));
                    // cudarc lists every library name it tried; the first sentence says enough.
                    let why = why.split(" - searched for").next().unwrap_or_default();
                    format!(
                        "CUDA is not usable here: {why} (needs an NVIDIA driver and CUDA's NVRTC on LD_LIBRARY_PATH)"
                    )
                })
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => Err(NO_CUDA.into()),
        }
    }
}

/// What a job reports.
#[derive(Debug)]
pub enum JobMsg {
    /// The run's sizes, known once the models are loaded.
    Planned(Plan),
    Progress {
        future: Option<usize>,
        phase: Phase,
        done: usize,
        total: usize,
    },
    /// Frame 0 (preview size).
    FirstFrame(RgbImage),
    /// Frame `index` of future `future` (preview size).
    Frame {
        future: usize,
        index: usize,
        image: RgbImage,
    },
    Finished(Result<JobOutcome, JobError>),
}

#[derive(Debug)]
pub enum JobOutcome {
    Generated { run: PathBuf, summary: RunSummary },
    Replayed { run: PathBuf, report: ReplayReport },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

impl From<PipelineError> for JobError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Cancelled => JobError::Cancelled,
            e => JobError::Failed(e.to_string()),
        }
    }
}

/// A generation to run: the request, its weights, and the run folder to write.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    pub request: RunRequest,
    pub weights: PathBuf,
    /// The run folder; replaced if it exists.
    pub out: PathBuf,
    pub device: Device,
}

/// A job in flight (or finished: its last message is `Finished`).
pub struct Job {
    /// Behind a mutex only so that the app state is `Sync` (a bevy resource).
    rx: Mutex<Receiver<JobMsg>>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    finished: bool,
}

impl Job {
    /// Starts generating in a new thread.
    pub fn generate(job: GenerateJob) -> Job {
        Job::spawn(move |tx, cancel| {
            check_available(job.device)?;
            let summary = with_backend!(job.device, |B, device| generate_on::<B>(&job, device, tx, cancel))?;
            Ok(JobOutcome::Generated { run: job.out.clone(), summary })
        })
    }

    /// Starts replaying the run folder `run` in a new thread.
    pub fn replay(run: PathBuf, weights: Option<PathBuf>, device: Device) -> Job {
        Job::spawn(move |tx, cancel| {
            check_available(device)?;
            let report = run_replay(&run, weights.as_deref(), device, tx, cancel)?;
            Ok(JobOutcome::Replayed { run, report })
        })
    }

    fn spawn(work: impl FnOnce(&Sender<JobMsg>, &AtomicBool) -> Result<JobOutcome, JobError> + Send + 'static) -> Job {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("latentdrive-job".into())
            .spawn(move || {
                yield_to_the_ui();
                // A panic in the models must reach the UI as an error, not kill the app.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&tx, &flag)))
                    .unwrap_or_else(|p| Err(JobError::Failed(format!("internal error: {}", panic_text(&p)))));
                let _ = tx.send(JobMsg::Finished(result));
            })
            .ok();
        Job { rx: Mutex::new(rx), cancel, thread, finished: false }
    }

    /// Messages that arrived since the last call.
    pub fn poll(&mut self) -> Vec<JobMsg> {
        let msgs: Vec<JobMsg> = match self.rx.lock() {
            Ok(rx) => rx.try_iter().collect(),
            Err(poisoned) => poisoned.into_inner().try_iter().collect(),
        };
        if msgs.iter().any(|m| matches!(m, JobMsg::Finished(_))) {
            self.finished = true;
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        if self.thread.is_none() && !self.finished {
            // The thread could not be started at all.
            self.finished = true;
            return vec![JobMsg::Finished(Err(JobError::Failed("could not start a worker thread".into())))];
        }
        msgs
    }

    /// Asks the job to stop at its next sampling step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn finished(&self) -> bool {
        self.finished
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.cancel();
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn check_available(device: Device) -> Result<(), JobError> {
    device.ready().map_err(JobError::Failed)
}

fn generate_on<B: Backend>(
    job: &GenerateJob,
    device: B::Device,
    tx: &Sender<JobMsg>,
    cancel: &AtomicBool,
) -> Result<RunSummary, JobError> {
    let models = Models::<B>::load_for(&job.weights, &device, Needs::of(&job.request.options))?;
    let generator = Generator::new(models, device);
    let plan = generator.plan(&job.request.scenario, &job.request.options)?;
    let _ = tx.send(JobMsg::Planned(plan));
    if job.out.exists() {
        std::fs::remove_dir_all(&job.out)
            .map_err(|e| JobError::Failed(format!("cannot replace {}: {e}", job.out.display())))?;
    }
    let mut on_event = forward_events(&job.out, tx);
    let summary =
        pipeline::generate_to_dir(&generator, &job.request, &job.out, job.device.name(), &mut on_event, cancel)?;
    Ok(summary)
}

fn run_replay(
    run: &Path,
    weights: Option<&Path>,
    device: Device,
    tx: &Sender<JobMsg>,
    cancel: &AtomicBool,
) -> Result<ReplayReport, JobError> {
    let meta = pipeline::output::read_metadata(run)?;
    let _ = tx.send(JobMsg::Planned(meta.plan.clone()));
    // The replay writes a scratch folder; progress only (the frames are the run's own).
    let mut on_event = |e: Event| {
        if let Event::Step { future, phase, done, total } = e {
            let _ = tx.send(JobMsg::Progress { future, phase, done, total });
        }
    };
    let name = device.name();
    with_backend!(device, |B, dev| Ok(pipeline::replay::<B>(run, weights, dev, name, &mut on_event, cancel)?))
}

/// Turns pipeline events into messages, reading each new frame back from the run folder
/// at preview size (the pipeline writes a frame before announcing it).
fn forward_events<'a>(out: &'a Path, tx: &'a Sender<JobMsg>) -> impl FnMut(Event) + 'a {
    move |e| {
        let msg = match e {
            Event::Step { future, phase, done, total } => Some(JobMsg::Progress { future, phase, done, total }),
            Event::FirstFrame => load_preview(&out.join("frame0.png")).map(JobMsg::FirstFrame),
            Event::Frame { future, index, .. } => {
                load_preview(&frame_path(out, future, index)).map(|image| JobMsg::Frame { future, index, image })
            }
        };
        if let Some(m) = msg {
            let _ = tx.send(m);
        }
    }
}

/// A frame file at preview size; `None` if it cannot be read (the run itself reports
/// write errors).
pub fn load_preview(path: &Path) -> Option<RgbImage> {
    let img = image::open(path).ok()?.into_rgb8();
    let (w, h) = img.dimensions();
    if w <= PREVIEW_WIDTH {
        return Some(img);
    }
    let ph = (h * PREVIEW_WIDTH / w).max(1);
    Some(image::imageops::resize(&img, PREVIEW_WIDTH, ph, image::imageops::FilterType::Triangle))
}

/// Lowers this thread's scheduling priority (nice 10) so that the UI's threads win the
/// cores whenever both want them: a job then only slows down while the UI is busy.
/// Linux keeps the nice value per thread, and the generator's worker threads inherit
/// it. Elsewhere the job keeps the normal priority.
fn yield_to_the_ui() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who = 0` is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}
