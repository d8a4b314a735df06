//! `elbo._elbo`: the native half of the Python package, a thin layer over the library's facade ([`elbo::Model`],
//! [`elbo::Trainer`], [`elbo::Settings`]). NumPy conversions and Keras-style conveniences live in `elbo/`, in
//! Python; every rule about data, settings and runs stays in the library, so Python and the CLI take one path.

use elbo::api::{EpochMetrics, Flow, Observer};
use elbo::data::numpy::{Layout, MemArray, MemLabels, MemValues};
use elbo::data::{Bytes, Dataset};
use elbo::eval::disentangle::Grid;
use elbo::train::settings::{FileKeys, as_keywords};
use elbo::{Error, Model, Settings, Trainer};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 2 MB pages under the large buffers, as the `elbo` binary has them (see [`elbo::core::alloc`]).
#[global_allocator]
static ALLOCATOR: elbo::core::alloc::HugePages = elbo::core::alloc::HugePages;

/// An elbo error as the Python exception a Python user expects, its message naming keyword arguments.
fn py_err(e: Error) -> PyErr {
    let msg = as_keywords(&e.to_string());
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Checkpoint { path, .. } if std::fs::symlink_metadata(path).is_err() => {
            PyFileNotFoundError::new_err(msg)
        }
        // The library's message tells a shell user what to type; a Python user calls fit again.
        Error::Interrupted {
            kept,
            finished,
            dir,
            ..
        } => PyKeyboardInterrupt::new_err(format!(
            "interrupted; the checkpoint of epoch {kept} in {} is kept{}: fit again continues from it (fit(epochs=N) for N more epochs, as each fit trains), or elbo.load reads it",
            dir.display(),
            if *finished {
                " (training had finished)"
            } else {
                ""
            }
        )),
        Error::Stopped { .. } => PyKeyboardInterrupt::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// The calling thread's float mode, put back when the returned guard drops: elbo flushes denormals to zero while
/// it works, and every entry point takes this first so that the caller's own arithmetic (NumPy's) is left as it was.
fn float_mode() -> elbo::core::denormal::Scope {
    elbo::core::denormal::Scope::new()
}

/// The training settings' keyword names (snake_case), in the CLI's flag order.
#[pyfunction]
fn setting_names() -> Vec<String> {
    Settings::keys()
        .iter()
        .map(|k| k.replace('-', "_"))
        .collect()
}

/// One keyword argument's value as a config value: what a `--config` TOML file could hold.
fn toml_value(key: &str, v: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    let wrong = || {
        PyTypeError::new_err(format!(
            "{key}={}: give a number, a string, a bool or a list of them",
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    };
    if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        return Ok(toml::Value::Boolean(b.is_true()));
    }
    if v.is_instance_of::<pyo3::types::PyInt>() {
        return v.extract::<i64>().map(toml::Value::Integer).map_err(|_| {
            PyValueError::new_err(format!(
                "{key}={v}: too large (whole-number settings go up to {})",
                i64::MAX
            ))
        });
    }
    if v.is_instance_of::<pyo3::types::PyFloat>() {
        return Ok(toml::Value::Float(v.extract::<f64>()?));
    }
    if let Ok(s) = v.extract::<String>() {
        return Ok(toml::Value::String(s));
    }
    if v.hasattr("__fspath__")? {
        let p: PathBuf = v.extract()?;
        return p
            .to_str()
            .map(|s| toml::Value::String(s.to_string()))
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{key}={}: a path that is not UTF-8 cannot be recorded in a run's config",
                    p.display()
                ))
            });
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in v.try_iter()? {
            items.push(toml_value(key, &item?)?);
        }
        return Ok(toml::Value::Array(items));
    }
    // A convolution as a dict (`{"channels": 32, "kernel": 5, ...}`) is a config file's table.
    if let Ok(d) = v.cast::<PyDict>() {
        let mut table = toml::Table::new();
        for (k, item) in d.iter() {
            table.insert(k.extract::<String>()?, toml_value(key, &item)?);
        }
        return Ok(toml::Value::Table(table));
    }
    // NumPy arrays (hidden=np.array([400, 200])) are lists.
    if v.hasattr("tolist")? && v.hasattr("ndim")? && v.getattr("ndim")?.extract::<usize>()? > 0 {
        return toml_value(key, &v.call_method0("tolist")?);
    }
    // NumPy scalars (np.int64(20), np.float32(0.1)) are numbers too.
    if v.hasattr("item")? && v.hasattr("dtype")? {
        return toml_value(key, &v.call_method0("item")?);
    }
    Err(wrong())
}

/// Settings from keyword arguments: unknown names are a `TypeError` with the nearest valid one, as Python's own
/// are; a bad value a `ValueError` naming its keyword. `None` leaves a setting at its default.
fn settings_from(kwargs: &Bound<'_, PyDict>) -> PyResult<Settings> {
    let names = setting_names();
    let mut table = toml::Table::new();
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        if !names.contains(&key) {
            let hint = match Settings::nearest_key(&key) {
                Some(near) => format!("did you mean '{}'?", near.replace('-', "_")),
                None => "elbo.setting_names() lists them".into(),
            };
            return Err(PyTypeError::new_err(format!(
                "unexpected keyword argument '{key}'; {hint}"
            )));
        }
        if v.is_none() {
            continue;
        }
        table.insert(key.clone(), toml_value(&key, &v)?);
    }
    Settings::from_table(table, "elbo.VAE", None).map_err(|e| {
        let mut msg = e.to_string();
        for k in Settings::keys() {
            // Named as the keyword, whichever spelling reached the table (`batch_size` or `batch-size`).
            let keyword = format!("{}=", k.replace('-', "_"));
            msg = msg.replace(&format!("key '{k}'"), &keyword);
            msg = msg.replace(&format!("key '{}'", k.replace('-', "_")), &keyword);
        }
        PyValueError::new_err(as_keywords(&msg))
    })
}

/// Keyword settings over a `--config` file's, as `elbo train --config FILE --flag …` combines them, and the
/// settings only the file gave, which errors name as its keys (`lr = -1`) rather than as keywords.
fn settings_with_file(
    kwargs: &Bound<'_, PyDict>,
    config: Option<&(String, String)>,
) -> PyResult<(Settings, FileKeys)> {
    let s = settings_from(kwargs)?;
    let Some((name, text)) = config else {
        return Ok((s, FileKeys::default()));
    };
    s.over_config(text, name).map_err(py_err)
}

/// A config file's text, read once (bounded, a regular file, UTF-8) so that training uses what was checked even
/// if the file changes or the working folder moves in between.
#[pyfunction]
fn read_config(path: PathBuf) -> PyResult<String> {
    elbo::api::trainer::read_text(&path, "a config file").map_err(py_err)
}

/// Checks keyword settings (and a config file's `(name, text)`) as `elbo.VAE(...)` takes them, without training.
#[pyfunction]
#[pyo3(signature = (settings, config=None))]
fn check_settings(settings: &Bound<'_, PyDict>, config: Option<(String, String)>) -> PyResult<()> {
    // What merging says (a file's setting left out) is said once, by `fit`, which merges again.
    let (merged, _) = elbo::notes::capture(|| settings_with_file(settings, config.as_ref()));
    let (s, file) = merged?;
    // Without data yet (it comes with fit's x), settings of one's own data wait for it to be checked.
    if s.data.is_some() || s.dataset.is_some() {
        s.source().map_err(|e| py_err(file.rename(e)))?;
    }
    // Values (lr=-1, a flow with latent layers, ...) are refused here, as Keras refuses a bad layer when it is
    // made, not when fit has already loaded the data.
    s.check_without_data().map_err(|e| py_err(file.rename(e)))
}

/// Training's progress handed to a Python object's methods (`note`, `epoch_start`, `step`, `epoch_end`), with
/// the GIL taken only for those calls. The first exception a method raises stops training after the epoch and is
/// raised again by `train`.
struct PyObserver {
    target: Option<Py<PyAny>>,
    /// The caller's float mode, which the methods run in: training flushes denormals on its threads.
    mode: elbo::core::denormal::Mode,
    error: Option<PyErr>,
    last_step: Option<Instant>,
}

impl PyObserver {
    fn call(
        &mut self,
        method: &str,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
    ) -> Option<bool> {
        let target = self.target.as_ref()?;
        if self.error.is_some() {
            return None;
        }
        let mode = self.mode;
        mode.run(|| {
            Python::attach(|py| {
                let result = args(py).and_then(|a| target.call_method1(py, method, a));
                match result {
                    Ok(r) => r.bind(py).is_truthy().ok(),
                    Err(e) => {
                        self.error = Some(e);
                        None
                    }
                }
            })
        })
    }
}

impl Observer for PyObserver {
    fn note(&mut self, line: &str) {
        // Said as a Python user sets things: `k_train=1`, not `--k-train 1`.
        let line = as_keywords(line);
        self.call("note", |py| PyTuple::new(py, [line.as_str()]));
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, items: usize) {
        self.last_step = None;
        self.call("epoch_start", |py| PyTuple::new(py, [epoch, epochs, items]));
    }

    fn step(&mut self, items: usize, loss: f64, per_second: f64) {
        // A redraw four times a second is what a progress bar needs; taking the GIL every step is not.
        if self
            .last_step
            .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
        {
            return;
        }
        self.last_step = Some(Instant::now());
        self.call("step", |py| {
            PyTuple::new(
                py,
                [
                    items.into_pyobject(py)?.into_any(),
                    loss.into_pyobject(py)?.into_any(),
                    per_second.into_pyobject(py)?.into_any(),
                ],
            )
        });
    }

    fn abandon(&mut self) {
        self.call("abandon", |py| Ok(PyTuple::empty(py)));
    }

    fn epoch_end(&mut self, m: &EpochMetrics, line: &str) -> Flow {
        let json = serde_json::to_string(m).unwrap_or_default();
        let stop = self.call("epoch_end", |py| {
            let metrics = py.import("json")?.call_method1("loads", (json,))?;
            PyTuple::new(py, [metrics, line.into_pyobject(py)?.into_any()])
        });
        if stop == Some(true) || self.error.is_some() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// A Python value from JSON text (metrics, configs): plain dicts, lists and numbers.
fn from_json<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| PyValueError::new_err(format!("cannot convert to Python: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// Trains: a new run from keyword settings, or (with `resume`) the continuation of the run in that folder to
/// `epochs` in all. `keep` is an `.npz` the caller wrote for this run alone, moved into the run directory and
/// recorded as its data; `arrays` (as `items_of` takes them, named `x_train` and `x_test`, or `x`) are the same
/// arrays in memory, trained on in place instead of being read back from `keep`. Returns the run directory and
/// the metric history of every epoch.
#[pyfunction]
#[pyo3(signature = (settings, config=None, force=false, keep=None, observer=None, resume=None, epochs=None, data_dir=None, arrays=None))]
#[allow(clippy::too_many_arguments)]
fn train<'py>(
    py: Python<'py>,
    settings: &Bound<'py, PyDict>,
    config: Option<(String, String)>,
    force: bool,
    keep: Option<PathBuf>,
    observer: Option<Py<PyAny>>,
    resume: Option<PathBuf>,
    epochs: Option<usize>,
    data_dir: Option<PathBuf>,
    arrays: Option<Vec<Bound<'py, PyAny>>>,
) -> PyResult<(PathBuf, Bound<'py, PyAny>)> {
    let float_mode = float_mode();
    // What merging a config file says ("k-train = 5 from c.toml is kept") reaches the observer, as every note.
    let (merged, merge_notes) =
        elbo::notes::capture(|| settings_with_file(settings, config.as_ref()));
    let (s, file) = merged?;
    let arrays = match arrays {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|a| {
                    let (array, tag, dtype, labels, _, name): ArraySource<'_> = a.extract()?;
                    mem_array(&array, &tag, &dtype, labels.as_ref(), &name)
                })
                .collect::<PyResult<Vec<MemArray>>>()?,
        ),
    };
    let threads = s.threads.unwrap_or(0);
    let mut obs = PyObserver {
        target: observer,
        mode: float_mode.mode(),
        error: None,
        last_step: None,
    };
    for line in &merge_notes {
        obs.note(line);
    }
    let outcome = py.detach(|| -> elbo::Result<(PathBuf, Vec<EpochMetrics>)> {
        let asked = elbo::core::threads::check(threads).map_err(|e| file.rename(e))?;
        let got = elbo::core::threads::init(asked);
        let wanted = match asked {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if s.threads.is_some() && got != wanted {
            // The pool is built once per process (a second pool would compete with the first for the cores).
            obs.note(&format!(
                "elbo: threads={threads} does not apply: this process's pool was sized to {got} by its first use and keeps that size; start a new Python process for another count"
            ));
        }
        // What the library says while it reads the data ("read as 8-bit images") reaches Python's stderr, which
        // a notebook shows, through the observer.
        let (made, said) = elbo::notes::capture(|| -> elbo::Result<Trainer> {
            let mut trainer = match (&resume, arrays) {
                (Some(dir), _) => Trainer::resume(dir, epochs, data_dir.as_deref())?,
                (None, Some(arrays)) => {
                    let mut s = s.clone();
                    file.leave_out_for_arrays(&mut s);
                    Trainer::from_arrays(&s, arrays, force)?
                }
                (None, None) => Trainer::new(&s, force)?,
            };
            if let Some(file) = &keep {
                trainer.keep_data(file)?;
            }
            Ok(trainer)
        });
        for line in &said {
            obs.note(line);
        }
        let mut trainer = made.map_err(|e| file.rename(e))?;
        for line in trainer.notes() {
            obs.note(line);
        }
        // Ctrl-C (and a notebook's interrupt) stops training between two steps; Python's own handler is back
        // when `_signals` drops.
        let _signals = elbo::signals::Catch::install();
        let history = trainer.fit(&mut obs)?;
        if let Some(signal) = elbo::signals::received() {
            return Err(Error::Interrupted {
                signal,
                kept: history.len(),
                finished: true,
                dir: trainer.run_dir().to_path_buf(),
            });
        }
        Ok((trainer.run_dir().to_path_buf(), history))
    });
    if let Some(e) = obs.error.take() {
        return Err(e);
    }
    let (dir, history) = outcome.map_err(py_err)?;
    Ok((dir, from_json(py, &history)?))
}

/// Whether a long computation goes on: not once Ctrl-C (or a notebook's interrupt) has arrived, which
/// `Catch` holds back from Python while the GIL is released.
fn go_on(_done: usize) -> bool {
    elbo::signals::received().is_none()
}

/// A trained model, opened from its run directory.
#[pyclass(name = "Model", module = "elbo._elbo", frozen)]
struct PyModel {
    inner: Model,
    dir: PathBuf,
}

/// What `elbo/_arrays.py`'s `for_library` passes: array, conversion, dtype name, labels, layout, name.
type ArraySource<'py> = (
    Bound<'py, PyAny>,
    String,
    String,
    Option<Bound<'py, PyAny>>,
    Option<String>,
    String,
);

/// Per-item results and what identifies the items: two arrays, the labels read, the item names.
type PerItem<'py> = (
    Bound<'py, PyAny>,
    Option<Bound<'py, PyAny>>,
    Option<Vec<String>>,
    Vec<String>,
);

/// Each item's class by name (the run's classes, then any new ones the items brought), never a bare index.
fn class_names(ds: &Dataset) -> Option<Vec<String>> {
    ds.labels.as_ref().map(|l| {
        l.iter()
            .map(|&i| {
                ds.classes
                    .get(i as usize)
                    .cloned()
                    .unwrap_or_else(|| i.to_string())
            })
            .collect()
    })
}

/// Items to read: a path (as `--input` takes), or a NumPy array with its dtype's name, how the Python layer
/// converted it (`uint8`, `bool`, `int` or `float`, see `elbo/_arrays.py`), and optional labels.
fn items_of(model: &Model, source: &Bound<'_, PyAny>) -> PyResult<Dataset> {
    if let Ok(path) = source.extract::<PathBuf>() {
        let (items, said) = elbo::notes::capture(|| model.read(&path));
        show_notes(source.py(), &said);
        return items.map_err(py_err);
    }
    let (array, tag, dtype, labels, layout, name): ArraySource<'_> = source.extract()?;
    let mem = mem_array(&array, &tag, &dtype, labels.as_ref(), &name)?;
    let layout: Option<Layout> = layout
        .map(|l| l.parse())
        .transpose()
        .map_err(|e| PyValueError::new_err(format!("layout={e}")))?;
    let (items, said) = elbo::notes::capture(|| model.items(mem, layout));
    show_notes(source.py(), &said);
    items.map_err(py_err)
}

/// Lines the library said, written to Python's `sys.stderr` (a notebook's cell, a script's terminal).
fn show_notes(py: Python<'_>, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    if let Ok(err) = py.import("sys").and_then(|sys| sys.getattr("stderr")) {
        for line in lines {
            let _ = err.call_method1("write", (format!("{}\n", as_keywords(line)),));
        }
    }
}

/// A NumPy array's bytes, read in place: the array is kept alive with them, and NumPy refuses to resize an array
/// another reference holds. Writing to it while elbo reads (from another thread, during `fit`) is the caller's race,
/// as with `torch.from_numpy`; the docstrings of `fit`, `encode` and `score` say so.
struct Borrowed {
    ptr: *const u8,
    len: usize,
    _array: Py<PyAny>,
}

// SAFETY: the bytes are only read, and `_array` keeps them allocated; `Py` may be dropped on any thread.
unsafe impl Send for Borrowed {}
// SAFETY: as above: shared references only read.
unsafe impl Sync for Borrowed {}

impl AsRef<[u8]> for Borrowed {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is the C-contiguous data of `_array`, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A NumPy array (already C-contiguous uint8 or float32, see `elbo/_arrays.py`) as the library's in-memory array;
/// uint8 and bool arrays are read in place, not copied.
fn mem_array(
    array: &Bound<'_, PyAny>,
    tag: &str,
    dtype: &str,
    labels: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<MemArray> {
    let (shape, values) = if let Ok(a) = array.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        let v = a
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let bytes = Bytes::shared(Arc::new(Borrowed {
            ptr: v.as_ptr(),
            len: v.len(),
            _array: array.clone().unbind(),
        }));
        let values = if tag == "bool" {
            MemValues::Bool(bytes)
        } else {
            MemValues::Uint8(bytes)
        };
        (a.shape().to_vec(), values)
    } else {
        let a: PyReadonlyArrayDyn<'_, f32> = array.extract()?;
        let v = a
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let values = if tag == "int" {
            MemValues::Int(v.to_vec())
        } else {
            MemValues::Float(v.to_vec())
        };
        (a.shape().to_vec(), values)
    };
    let labels = match labels {
        None => None,
        Some(l) => Some(if let Ok(v) = l.extract::<Vec<i64>>() {
            MemLabels::Int(v)
        } else {
            MemLabels::Text(l.extract::<Vec<String>>().map_err(|_| {
                PyValueError::new_err(format!(
                    "labels of {name}: give integers or strings, one per item"
                ))
            })?)
        }),
    };
    Ok(MemArray {
        name: name.to_string(),
        shape,
        type_name: dtype.to_string(),
        values,
        labels,
    })
}

impl PyModel {
    /// `values` (`n` items, row after row) as an array of shape `(n, *item)`: `(h, w)` for grey images,
    /// `(h, w, c)` for colour, `(d,)` for vectors and tables.
    fn shaped<'py>(
        &self,
        py: Python<'py>,
        values: Vec<f32>,
        n: usize,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let s = self.inner.item_shape();
        let dims: Vec<usize> = match self.inner.kind() {
            elbo::data::Kind::Image if s.channels == 1 => vec![n, s.height, s.width],
            elbo::data::Kind::Image => vec![n, s.height, s.width, s.channels],
            _ => vec![n, s.len()],
        };
        values.into_pyarray(py).reshape(dims)
    }

    fn labels_of(&self, labels: Option<Vec<u32>>) -> Vec<u32> {
        labels.unwrap_or_default()
    }
}

#[pymethods]
impl PyModel {
    /// Opens the run directory `path` at its newest checkpoint.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<PyModel> {
        let inner = py.detach(|| Model::open(&path)).map_err(py_err)?;
        Ok(PyModel { inner, dir: path })
    }

    /// The run directory.
    #[getter]
    fn run_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// The run's resolved configuration, as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, self.inner.config())
    }

    /// Metrics of every epoch trained.
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.inner.history())
    }

    /// Latent dimensions of the codes: the top latent layer's.
    #[getter]
    fn latent(&self) -> usize {
        self.inner.latent()
    }

    /// Stochastic layers (1 unless stacked, as with latent=[100, 50]).
    #[getter]
    fn depth(&self) -> usize {
        self.inner.depth()
    }

    /// Epochs trained.
    #[getter]
    fn epoch(&self) -> usize {
        self.inner.epoch()
    }

    /// One item's shape as (height, width, channels).
    #[getter]
    fn item_shape(&self) -> (usize, usize, usize) {
        let s = self.inner.item_shape();
        (s.height, s.width, s.channels)
    }

    /// What the items are: "image", "vector" or "table".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner.kind() {
            elbo::data::Kind::Image => "image",
            elbo::data::Kind::Vector => "vector",
            elbo::data::Kind::Table => "table",
        }
    }

    /// Class names, indexed by label.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.classes().to_vec()
    }

    /// Whether the model is a VAE (not a deterministic autoencoder).
    #[getter]
    fn is_variational(&self) -> bool {
        self.inner.is_variational()
    }

    /// Whether the model is conditioned on the class.
    #[getter]
    fn is_conditional(&self) -> bool {
        self.inner.is_conditional()
    }

    /// Posterior means and log-variances of the items, each of shape (n, latent); plus the labels read.
    fn encode<'py>(&self, py: Python<'py>, source: &Bound<'py, PyAny>) -> PyResult<PerItem<'py>> {
        let _float_mode = float_mode();
        let ds = items_of(&self.inner, source)?;
        let enc = py.detach(|| self.inner.encode(&ds)).map_err(py_err)?;
        let mu = enc
            .mu
            .into_pyarray(py)
            .reshape([enc.n, enc.latent])?
            .into_any();
        let logvar = if enc.logvar.is_empty() {
            None
        } else {
            Some(
                enc.logvar
                    .into_pyarray(py)
                    .reshape([enc.n, enc.latent])?
                    .into_any(),
            )
        };
        let (labels, names) = (class_names(&ds), ds.names.clone());
        Ok((mu, logvar, labels, names))
    }

    /// Decoder means of codes (n, latent) in the data's units.
    #[pyo3(signature = (codes, labels=None))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        codes: PyReadonlyArrayDyn<'py, f32>,
        labels: Option<Vec<u32>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let _float_mode = float_mode();
        let zd = self.inner.latent();
        if codes.ndim() != 2 || codes.shape()[1] != zd {
            return Err(PyValueError::new_err(format!(
                "codes of shape {:?}: give an array of shape (n, {zd}), one row of {zd} latent values per code",
                codes.shape()
            )));
        }
        let z = codes
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .to_vec();
        let labels = self.labels_of(labels);
        let n = codes.shape()[0];
        let out = py
            .detach(|| self.inner.decode(&z, &labels))
            .map_err(py_err)?;
        self.shaped(py, out, n)
    }

    /// Decoder means of n draws from the prior.
    #[pyo3(signature = (n, seed=1, temperature=1.0, labels=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
        temperature: f64,
        labels: Option<Vec<u32>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let _float_mode = float_mode();
        let labels = self.labels_of(labels);
        let out = py
            .detach(|| self.inner.sample(n, seed, temperature, &labels))
            .map_err(py_err)?;
        self.shaped(py, out, n)
    }

    /// Each item decoded from its posterior mean.
    fn reconstruct<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let _float_mode = float_mode();
        let ds = items_of(&self.inner, source)?;
        let out = py.detach(|| self.inner.reconstruct(&ds)).map_err(py_err)?;
        self.shaped(py, out, ds.len())
    }

    /// Per item: (−ELBO, −log p(x)) with k importance samples, as two arrays, and the items' names.
    #[pyo3(signature = (source, k=100, seed=1))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
        k: usize,
        seed: u64,
    ) -> PyResult<PerItem<'py>> {
        let _float_mode = float_mode();
        let ds = items_of(&self.inner, source)?;
        let est = py
            .detach(|| {
                let _signals = elbo::signals::Catch::install();
                self.inner.score_with(&ds, k, seed, &go_on)
            })
            .map_err(py_err)?;
        let neg_elbo: Vec<f64> = est.iter().map(|e| -e.elbo).collect();
        let nll: Vec<f64> = est.iter().map(|e| -e.log_px).collect();
        let (labels, names) = (class_names(&ds), ds.names.clone());
        Ok((
            neg_elbo.into_pyarray(py).into_any(),
            Some(nll.into_pyarray(py).into_any()),
            labels,
            names,
        ))
    }

    /// The set's mean −ELBO, −log p(x) (k importance samples) and bits per dimension, as a dict.
    #[pyo3(signature = (source, k=5000, seed=1))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
        k: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _float_mode = float_mode();
        let ds = items_of(&self.inner, source)?;
        let est = py
            .detach(|| {
                let _signals = elbo::signals::Catch::install();
                self.inner.evaluate_with(&ds, k, seed, &go_on)
            })
            .map_err(py_err)?;
        let d = PyDict::new(py);
        d.set_item("neg_elbo", est.neg_elbo)?;
        d.set_item("nll", est.nll)?;
        d.set_item("bits_per_dim", est.bits_per_dim)?;
        d.set_item("k", est.k)?;
        d.set_item("n", est.n)?;
        Ok(d.into_any())
    }

    /// The five disentanglement metrics against the factors of the run's own data, as `elbo disentanglement
    /// --json` gives them (without its timing).
    #[pyo3(signature = (points=10_000, seed=1, data_dir=None))]
    fn disentanglement<'py>(
        &self,
        py: Python<'py>,
        points: usize,
        seed: u64,
        data_dir: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _float_mode = float_mode();
        use elbo::api::disentangle::{MAX_POINTS, MIN_POINTS};
        if !(MIN_POINTS..=MAX_POINTS).contains(&points) {
            return Err(PyValueError::new_err(format!(
                "points={points} must be between {MIN_POINTS} and {MAX_POINTS} (disentanglement_lib uses 10000)"
            )));
        }
        let sizes = elbo::eval::disentangle::Sizes::with_points(points);
        let r = py
            .detach(|| {
                let _signals = elbo::signals::Catch::install();
                self.inner
                    .disentanglement_of_run(data_dir.as_deref(), sizes, seed, &go_on)
            })
            .map_err(py_err)?;
        let d = from_json(py, &r)?;
        d.set_item("points", points)?;
        d.set_item("seed", seed)?;
        Ok(d)
    }

    /// The weights as (name, shape, values) in PyTorch's names and layout (`[out, in]` for dense weights).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let _float_mode = float_mode();
        let d = PyDict::new(py);
        for (name, shape, values) in self.inner.weights() {
            d.set_item(
                name,
                values.clone().into_pyarray(py).reshape(shape.clone())?,
            )?;
        }
        Ok(d)
    }
}

/// A 2-D array's rows, columns and values (C order), or a ValueError naming the keyword.
fn matrix<T: numpy::Element + Copy>(
    a: &PyReadonlyArrayDyn<'_, T>,
    what: &str,
) -> PyResult<(usize, usize, Vec<T>)> {
    if a.ndim() != 2 || a.shape()[0] == 0 || a.shape()[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "{what} of shape {:?}: give an array of shape (n, d) with n and d at least 1",
            a.shape()
        )));
    }
    let v = a
        .as_slice()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?
        .to_vec();
    Ok((a.shape()[0], a.shape()[1], v))
}

/// Codes and factor classes of the same items: (n, d, codes, k, classes).
type Checked = (usize, usize, Vec<f64>, usize, Vec<u32>);

/// Codes and factor classes of the same items, checked.
fn codes_and_factors(
    codes: &PyReadonlyArrayDyn<'_, f64>,
    factors: &PyReadonlyArrayDyn<'_, i64>,
    cname: &str,
    fname: &str,
) -> PyResult<Checked> {
    let (n, d, z) = matrix(codes, cname)?;
    let (m, k, y) = matrix(factors, fname)?;
    if m != n {
        return Err(PyValueError::new_err(format!(
            "{cname} has {n} rows but {fname} {m}: one row of factors per code"
        )));
    }
    if let Some(why) = elbo::eval::disentangle::codes_problem(&z, d, cname) {
        return Err(PyValueError::new_err(why));
    }
    if let Some(i) = y.iter().position(|&v| !(0..=u32::MAX as i64).contains(&v)) {
        return Err(PyValueError::new_err(format!(
            "{fname}[{}, {}] is {}: factors are class indices, integers from 0 to {}",
            i / k,
            i % k,
            y[i],
            u32::MAX
        )));
    }
    Ok((n, d, z, k, y.into_iter().map(|v| v as u32).collect()))
}

/// Chen et al.'s mutual information gap of codes (n, d) against factor classes (n, k).
#[pyfunction]
fn metric_mig(
    codes: PyReadonlyArrayDyn<'_, f64>,
    factors: PyReadonlyArrayDyn<'_, i64>,
    bins: usize,
) -> PyResult<f64> {
    let _float_mode = float_mode();
    let (_, d, z, k, y) = codes_and_factors(&codes, &factors, "codes", "factors")?;
    if !(1..=65536).contains(&bins) {
        return Err(PyValueError::new_err(format!(
            "bins={bins}: give a whole number of bins from 1 to 65536"
        )));
    }
    Ok(elbo::eval::disentangle::mig(&z, &y, d, k, bins))
}

/// The training and held-out codes and factors of SAP and DCI, checked to agree.
type Split = (usize, Vec<f64>, Vec<u32>, Vec<f64>, Vec<u32>, usize);

fn split_of(
    codes: PyReadonlyArrayDyn<'_, f64>,
    factors: PyReadonlyArrayDyn<'_, i64>,
    codes_test: PyReadonlyArrayDyn<'_, f64>,
    factors_test: PyReadonlyArrayDyn<'_, i64>,
) -> PyResult<Split> {
    let (_, d, ztr, k, ytr) = codes_and_factors(&codes, &factors, "codes", "factors")?;
    let (_, dt, zte, kt, yte) =
        codes_and_factors(&codes_test, &factors_test, "codes_test", "factors_test")?;
    if (dt, kt) != (d, k) {
        return Err(PyValueError::new_err(format!(
            "codes_test and factors_test have {dt} and {kt} columns, codes and factors {d} and {k}: give the same columns"
        )));
    }
    Ok((d, ztr, ytr, zte, yte, k))
}

/// Kumar et al.'s SAP, fitted on (codes, factors) and scored on the held-out pair.
#[pyfunction]
fn metric_sap(
    codes: PyReadonlyArrayDyn<'_, f64>,
    factors: PyReadonlyArrayDyn<'_, i64>,
    codes_test: PyReadonlyArrayDyn<'_, f64>,
    factors_test: PyReadonlyArrayDyn<'_, i64>,
) -> PyResult<f64> {
    let _float_mode = float_mode();
    let (d, ztr, ytr, zte, yte, k) = split_of(codes, factors, codes_test, factors_test)?;
    Ok(elbo::eval::disentangle::sap(&ztr, &ytr, &zte, &yte, d, k))
}

/// Eastwood & Williams' disentanglement, completeness and informativeness.
#[pyfunction]
fn metric_dci(
    codes: PyReadonlyArrayDyn<'_, f64>,
    factors: PyReadonlyArrayDyn<'_, i64>,
    codes_test: PyReadonlyArrayDyn<'_, f64>,
    factors_test: PyReadonlyArrayDyn<'_, i64>,
) -> PyResult<(f64, f64, f64)> {
    let _float_mode = float_mode();
    let (d, ztr, ytr, zte, yte, k) = split_of(codes, factors, codes_test, factors_test)?;
    Ok(elbo::eval::disentangle::dci(&ztr, &ytr, &zte, &yte, d, k))
}

/// Burda et al.'s active units of posterior means (n, d).
#[pyfunction]
fn metric_active_units(mu: PyReadonlyArrayDyn<'_, f64>) -> PyResult<usize> {
    let _float_mode = float_mode();
    let (_, d, z) = matrix(&mu, "mu")?;
    if let Some(i) = z.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "mu[{}, {}] is {}: posterior means must be finite",
            i / d,
            i % d,
            z[i]
        )));
    }
    Ok(elbo::eval::disentangle::active_units(&z, d))
}

/// The grid of factor `sizes` as the metrics take it, checked: every size at least 1 and one above 1.
fn grid_of(sizes: Vec<usize>) -> PyResult<Grid> {
    const MOST: usize = 64;
    if sizes.is_empty() || sizes.len() > MOST {
        return Err(PyValueError::new_err(format!(
            "factor_sizes has {} entries: give how many values each factor takes, 1 to {MOST} factors",
            sizes.len()
        )));
    }
    if let Some(bad) = sizes
        .iter()
        .find(|&&s| !(1..=u32::MAX as usize).contains(&s))
    {
        return Err(PyValueError::new_err(format!(
            "factor_sizes holds {bad}: each factor takes from 1 to {} values",
            u32::MAX
        )));
    }
    let grid = Grid { sizes };
    if grid.scored().is_empty() {
        return Err(PyValueError::new_err(
            "every factor of factor_sizes takes one value: there is nothing to disentangle",
        ));
    }
    Ok(grid)
}

/// The β-VAE metric, the FactorVAE metric (`which` "beta_vae", "factor_vae") or all five ("all", a dict) of
/// `represent`, a Python function from factor classes (n, k) int64 to codes (n, d) float64, drawn as `elbo
/// disentanglement --points` draws them. An exception `represent` raises is raised unchanged.
#[pyfunction]
fn metric_of_function<'py>(
    py: Python<'py>,
    represent: Bound<'py, PyAny>,
    factor_sizes: Vec<usize>,
    points: usize,
    seed: u64,
    which: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let float_mode = float_mode();
    let caller = float_mode.mode();
    use elbo::api::disentangle::{MAX_POINTS, MIN_POINTS};
    use elbo::eval::disentangle::{self as dis, Sizes};
    let grid = grid_of(factor_sizes)?;
    if !(MIN_POINTS..=MAX_POINTS).contains(&points) {
        return Err(PyValueError::new_err(format!(
            "points={points} must be between {MIN_POINTS} and {MAX_POINTS} (disentanglement_lib uses 10000)"
        )));
    }
    let k = grid.sizes.len();
    let mut raised: Option<PyErr> = None;
    let mut dim: Option<usize> = None;
    let mut encode = |rows: &[u32]| -> elbo::Result<Vec<f64>> {
        let n = rows.len() / k;
        let mut call = || -> PyResult<Vec<f64>> {
            // The metrics run for minutes: Ctrl-C (KeyboardInterrupt) is heard between calls.
            py.check_signals()?;
            let classes: Vec<i64> = rows.iter().map(|&c| i64::from(c)).collect();
            let arg = classes.into_pyarray(py).reshape([n, k])?;
            // The user's encoder computes in the user's float mode, not the metrics' flushed one.
            let out = caller.run(|| represent.call1((arg,)))?;
            let codes: PyReadonlyArrayDyn<'_, f64> = out.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "represent returned {}: return codes as a float64 array of shape (n, d)",
                    out.get_type()
                ))
            })?;
            let (m, d, z) = matrix(&codes, "represent's codes")?;
            if m != n || dim.is_some_and(|was| was != d) {
                return Err(PyValueError::new_err(format!(
                    "represent returned codes of shape ({m}, {d}) for {n} rows of factors{}: return one row of codes per row, always of the same width",
                    dim.map_or(String::new(), |was| format!(" (before: {was} codes)"))
                )));
            }
            if let Some(why) = elbo::eval::disentangle::batch_problem(&z, d, "represent's codes") {
                return Err(PyValueError::new_err(why));
            }
            dim = Some(d);
            Ok(z)
        };
        call().map_err(|e| {
            raised = Some(e);
            Error::Config("represent failed".into())
        })
    };
    let sizes = Sizes::with_points(points);
    let result = match which {
        "beta_vae" => dis::beta_vae_metric(&grid, &mut encode, sizes, seed)
            .map(|v| Ok(PyFloat::new(py, v).into_any())),
        "factor_vae" => dis::factor_vae_metric(&grid, &mut encode, sizes, seed)
            .map(|v| Ok(PyFloat::new(py, v).into_any())),
        _ => dis::all(&grid, &mut encode, sizes, seed).map(|s| from_json(py, &s)),
    };
    match (result, raised) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(py_err(e)),
        (Ok(v), None) => v,
    }
}

/// Images of dSprites' factor classes (n, 6) int64 as elbo's generator draws them: float32 (n, 64, 64), 1 inside
/// the shape and 0 outside.
#[pyfunction]
fn render_dsprites<'py>(
    py: Python<'py>,
    factors: PyReadonlyArrayDyn<'py, i64>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let _float_mode = float_mode();
    use elbo::data::dsprites::{NAMES, SIDE, SIZES};
    const MAX: usize = 1 << 18;
    if factors.ndim() != 2 || factors.shape()[1] != SIZES.len() {
        return Err(PyValueError::new_err(format!(
            "factors of shape {:?}: give an array of shape (n, 6), dSprites' classes ({}) per row",
            factors.shape(),
            NAMES.join(", ")
        )));
    }
    let n = factors.shape()[0];
    if n > MAX {
        return Err(PyValueError::new_err(format!(
            "{n} rows of factors: render at most {MAX} images per call (1 GiB of float32), in batches"
        )));
    }
    let rows = factors
        .as_slice()
        .map_err(|e| PyValueError::new_err(format!("factors: {e}")))?;
    let mut classes = Vec::with_capacity(rows.len());
    for (i, &c) in rows.iter().enumerate() {
        let j = i % SIZES.len();
        if !(0..SIZES[j] as i64).contains(&c) {
            return Err(PyValueError::new_err(format!(
                "factors[{}, {j}] is {c}: {} takes classes 0 to {}",
                i / SIZES.len(),
                NAMES[j],
                SIZES[j] - 1
            )));
        }
        classes.push(c as u32);
    }
    let images = py.detach(|| {
        let mut px = vec![0u8; n * SIDE * SIDE];
        elbo::data::dsprites::render_rows(&classes, &mut px);
        px.into_iter().map(f32::from).collect::<Vec<f32>>()
    });
    images.into_pyarray(py).reshape(vec![n, SIDE, SIDE])
}

/// Whether a folder holds a run elbo wrote (a checkpoint, or elbo's own `config.json`): `fit` replaces only those.
#[pyfunction]
fn holds_run(dir: PathBuf) -> bool {
    elbo::api::trainer::holds_run(&dir)
}

/// The native module.
#[pymodule]
fn _elbo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(setting_names, m)?)?;
    m.add_function(wrap_pyfunction!(check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(holds_run, m)?)?;
    m.add_function(wrap_pyfunction!(read_config, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(metric_mig, m)?)?;
    m.add_function(wrap_pyfunction!(metric_sap, m)?)?;
    m.add_function(wrap_pyfunction!(metric_dci, m)?)?;
    m.add_function(wrap_pyfunction!(metric_active_units, m)?)?;
    m.add_function(wrap_pyfunction!(metric_of_function, m)?)?;
    m.add_function(wrap_pyfunction!(render_dsprites, m)?)?;
    m.add("DSPRITES_SIZES", elbo::data::dsprites::SIZES.to_vec())?;
    m.add("DSPRITES_NAMES", elbo::data::dsprites::NAMES.to_vec())?;
    m.add("MAX_CLASS", elbo::data::factors::MAX_CLASS)?;
    m.add("MIN_POINTS", elbo::api::disentangle::MIN_POINTS)?;
    m.add("MAX_POINTS", elbo::api::disentangle::MAX_POINTS)?;
    Ok(())
}
