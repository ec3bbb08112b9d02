//! The production text embedder: all-MiniLM-L6-v2 (int8 weights) run by ONNX
//! Runtime through fastembed, with mean pooling and L2 normalisation.
//!
//! Everything is loaded from local files laid out by `scripts/fetch-models.sh`:
//!
//! ```text
//! <model_dir>/libonnxruntime.so.1.31.1
//! <model_dir>/all-MiniLM-L6-v2/model.onnx
//! <model_dir>/all-MiniLM-L6-v2/tokenizer.json
//! <model_dir>/all-MiniLM-L6-v2/config.json
//! <model_dir>/all-MiniLM-L6-v2/special_tokens_map.json
//! <model_dir>/all-MiniLM-L6-v2/tokenizer_config.json
//! ```
//!
//! ONNX Runtime is loaded with `ort::init_from` from that exact file (never
//! from `ORT_DYLIB_PATH` or the system library path). Nothing is downloaded.
//!
//! An [`Embedder`] is not meant to be shared between threads: keep it on one
//! dedicated thread and send it work.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock, PoisonError},
};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use sha2::{Digest, Sha256};

pub mod int8_weights;

use int8_weights::MatMulWeights;

/// Dimension of every vector this embedder returns.
pub const EMBEDDING_DIM: usize = 384;
/// Inputs are truncated to this many tokens (including `[CLS]` and `[SEP]`).
pub const MAX_TOKENS: usize = 256;
/// At most this many texts go through one ONNX Runtime run; longer inputs to
/// [`Embedder::embed`] are split (bounds the attention memory of one run).
pub const MAX_RUN_BATCH: usize = 64;
/// Name of the ONNX Runtime shared library inside the model directory.
pub const ORT_LIB_FILE: &str = "libonnxruntime.so.1.31.1";
/// Sub-directory of the model directory that holds the model and tokenizer.
pub const MODEL_SUBDIR: &str = "all-MiniLM-L6-v2";
/// Prefix of [`Embedder::model_id`].
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2-int8";
/// Files inside [`MODEL_SUBDIR`] that must exist.
pub const MODEL_FILES: [&str; 5] =
    ["model.onnx", "tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"];
/// Oldest ONNX Runtime the linked `ort`/fastembed build accepts (fastembed 7.5
/// enables ort's `api-24`).
pub const MIN_ORT_VERSION: &str = "1.24";

const FETCH_HINT: &str = "run `make models` (scripts/fetch-models.sh) to fetch it";

/// How to load the embedder.
#[derive(Debug, Clone)]
pub struct EmbedderSettings {
    /// Directory laid out by `scripts/fetch-models.sh`.
    pub model_dir: PathBuf,
    /// ONNX Runtime intra-op threads, >= 1.
    pub threads: usize,
    /// Let ONNX Runtime turn the int8 matrix weights into float copies at load (constant
    /// folding): about 100 MiB more resident memory (with its pre-packed copies), 10-20 %
    /// faster. Off: they stay int8 and run through int8-aware kernels ([`int8_weights`]), with
    /// the same vectors. The embedding tables stay int8 either way.
    pub float_weights: bool,
}

impl EmbedderSettings {
    #[allow(dead_code)]
    pub fn new(model_dir: impl Into<PathBuf>, threads: usize) -> Self {
        Self { model_dir: model_dir.into(), threads, float_weights: false }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("required file {} is missing: {FETCH_HINT}", .0.display())]
    MissingFile(PathBuf),

    #[error("could not read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid embedder settings: {0}")]
    InvalidSettings(String),

    #[error(
        "could not load ONNX Runtime from {}: {message} (driftballoon needs ONNX Runtime >= {MIN_ORT_VERSION}; \
         {ORT_LIB_FILE} from the onnxruntime==1.31.1 wheel is expected there, {FETCH_HINT})",
        .path.display()
    )]
    OrtLoad { path: PathBuf, message: String },

    #[error(
        "ONNX Runtime {} is too old: driftballoon needs >= {MIN_ORT_VERSION} ({message}); {FETCH_HINT}",
        .path.display()
    )]
    OrtTooOld { path: PathBuf, message: String },

    #[error("ONNX Runtime was already loaded in this process from {}, cannot load {} as well", .loaded.display(), .requested.display())]
    OrtAlreadyLoaded { loaded: PathBuf, requested: PathBuf },

    #[error("could not create the ONNX Runtime environment: {0}")]
    OrtEnvironment(String),

    #[error("could not initialise the embedding model from {}: {source}", .dir.display())]
    ModelInit {
        dir: PathBuf,
        #[source]
        source: fastembed::Error,
    },

    #[error("embedding failed: {0}")]
    Inference(#[source] fastembed::Error),

    #[error("the embedding model returned unexpected output: {0}")]
    BadOutput(String),
}

/// ONNX Runtime allows one environment per process, and the library can be
/// loaded only once: both are kept here and reused by every [`Embedder::load`].
struct OrtRuntime {
    lib_path: PathBuf,
    environment: ort::environment::Environment,
}

static ORT_RUNTIME: OnceLock<Mutex<Option<OrtRuntime>>> = OnceLock::new();

fn ort_environment(lib_path: &Path) -> Result<ort::environment::Environment, EmbedError> {
    let cell = ORT_RUNTIME.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(rt) = guard.as_ref() {
        if rt.lib_path != lib_path {
            return Err(EmbedError::OrtAlreadyLoaded {
                loaded: rt.lib_path.clone(),
                requested: lib_path.to_path_buf(),
            });
        }
        return Ok(rt.environment.clone());
    }
    let builder = ort::init_from(lib_path).map_err(|e| {
        let mut message = e.to_string();
        if let ort::LoadDynamicError::Dlopen { error, .. } = &e {
            // libloading's Display says only "dlopen failed"; the reason
            // (dlerror: missing libstdc++, wrong architecture, ...) is its source.
            let mut source = std::error::Error::source(error);
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
        }
        match e {
            ort::LoadDynamicError::BadVersion { .. } => EmbedError::OrtTooOld { path: lib_path.to_path_buf(), message },
            _ => EmbedError::OrtLoad { path: lib_path.to_path_buf(), message },
        }
    })?;
    let environment = builder
        .with_name("driftballoon")
        .with_telemetry(false)
        .build()
        .map_err(|e| EmbedError::OrtEnvironment(e.to_string()))?;
    *guard = Some(OrtRuntime { lib_path: lib_path.to_path_buf(), environment: environment.clone() });
    Ok(environment)
}

/// The model with its weights kept int8 (see [`int8_weights`]), or as it was if it has no
/// weight the rewrite understands.
fn int8_weights_model(onnx: Vec<u8>, matmul_weights: MatMulWeights) -> Vec<u8> {
    match int8_weights::keep_weights_int8(&onnx, matmul_weights) {
        Ok(r) => {
            tracing::debug!(matmuls = r.matmuls, gathers = r.gathers, "int8 weights kept int8");
            r.model
        }
        Err(error) => {
            tracing::warn!(%error, "could not read the model's graph; its weights become float copies");
            onnx
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EmbedError::MissingFile(path.to_path_buf())
        } else {
            EmbedError::Io { path: path.to_path_buf(), source }
        }
    })
}

/// The embedder. Owns one ONNX Runtime session.
pub struct Embedder {
    model: TextEmbedding,
    model_id: String,
    model_sha256: String,
    threads: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Paths of every file [`Embedder::load`] needs, ONNX Runtime first.
    pub fn required_files(model_dir: &Path) -> Vec<PathBuf> {
        let mut files = vec![model_dir.join(ORT_LIB_FILE)];
        files.extend(MODEL_FILES.iter().map(|f| model_dir.join(MODEL_SUBDIR).join(f)));
        files
    }

    /// Loads ONNX Runtime and the model. Checks that every file exists first;
    /// a missing file yields [`EmbedError::MissingFile`] naming it.
    pub fn load(settings: &EmbedderSettings) -> Result<Embedder, EmbedError> {
        let matmul_weights = if settings.float_weights { MatMulWeights::FloatCopies } else { MatMulWeights::KeepInt8 };
        Self::load_with(settings, Some(matmul_weights))
    }

    /// [`Embedder::load`] with the model's weights rewritten as `rewrite` says, or (`None`) the
    /// file as it is, every weight folded into a float copy (what a plain ONNX Runtime does).
    fn load_with(settings: &EmbedderSettings, rewrite: Option<MatMulWeights>) -> Result<Embedder, EmbedError> {
        if settings.threads == 0 {
            return Err(EmbedError::InvalidSettings("threads must be >= 1".into()));
        }
        for path in Self::required_files(&settings.model_dir) {
            if !path.is_file() {
                return Err(EmbedError::MissingFile(path));
            }
        }

        // Absolute path: ort resolves a relative one against the executable's
        // directory first, which is not what a user means by `./models`.
        let lib_path = settings.model_dir.join(ORT_LIB_FILE);
        let lib_path =
            std::fs::canonicalize(&lib_path).map_err(|source| EmbedError::Io { path: lib_path.clone(), source })?;
        let environment = ort_environment(&lib_path)?;

        let dir = settings.model_dir.join(MODEL_SUBDIR);
        let onnx = read_file(&dir.join("model.onnx"))?;
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read_file(&dir.join("tokenizer.json"))?,
            config_file: read_file(&dir.join("config.json"))?,
            special_tokens_map_file: read_file(&dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read_file(&dir.join("tokenizer_config.json"))?,
        };
        let model_sha256 = hex::encode(Sha256::digest(&onnx));
        let model_id = format!("{MODEL_NAME}@{}", &model_sha256[..12]);

        let model = match rewrite {
            Some(matmul_weights) => int8_weights_model(onnx, matmul_weights),
            None => onnx,
        };
        let model = UserDefinedEmbeddingModel::new(model, tokenizer_files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_max_length(MAX_TOKENS)
            .with_intra_threads(settings.threads)
            // Idle intra-op workers sleep instead of busy-waiting, so an idle server does not
            // burn CPU and the HTTP side gets its cores back the moment a run ends.
            .with_session_config("session.intra_op.allow_spinning", "0")
            // No CPU arena: ONNX Runtime's arena keeps the largest run's buffers for the life
            // of the session (tens of MiB after one batch of long texts); plain malloc gives
            // them back, at a cost within the noise of a run (see BENCHMARKS.md, "Embedding throughput").
            .with_execution_providers(vec![ort::ep::CPU::default().with_arena_allocator(false).build()]);
        let model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|source| EmbedError::ModelInit { dir: dir.clone(), source })?;

        Ok(Embedder { model, model_id, model_sha256, threads: settings.threads })
    }

    /// Stable id of the model, stored next to every vector:
    /// `all-MiniLM-L6-v2-int8@<first 12 hex of model.onnx sha256>`.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Full sha256 (hex) of the loaded model.onnx.
    #[allow(dead_code)]
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// Intra-op threads the session was created with.
    #[allow(dead_code)]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// L2-normalised [`EMBEDDING_DIM`]-dim vectors (mean pooling over at most
    /// [`MAX_TOKENS`] tokens), one per input, in the same order. At most
    /// [`MAX_RUN_BATCH`] texts go through one ONNX Runtime run.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MAX_RUN_BATCH) {
            let vectors = self.model.embed(chunk, Some(chunk.len())).map_err(EmbedError::Inference)?;
            if vectors.len() != chunk.len() {
                return Err(EmbedError::BadOutput(format!("{} vectors for {} texts", vectors.len(), chunk.len())));
            }
            for v in &vectors {
                if v.len() != EMBEDDING_DIM {
                    return Err(EmbedError::BadOutput(format!(
                        "vector of dimension {}, expected {EMBEDDING_DIM}",
                        v.len()
                    )));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(EmbedError::BadOutput("non-finite value in vector".into()));
                }
            }
            out.extend(vectors);
        }
        Ok(out)
    }

    /// Number of tokens (including `[CLS]`/`[SEP]`, after truncation to
    /// [`MAX_TOKENS`]) the text will use.
    pub fn token_count(&self, text: &str) -> usize {
        match self.model.tokenizer.encode(text, true) {
            Ok(encoding) => encoding.len(),
            // The BERT tokenizer does not fail on any &str; be conservative.
            Err(_) => MAX_TOKENS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
    }

    #[test]
    fn the_shipped_model_keeps_every_weight_int8() {
        let onnx = read_file(&model_dir().join(MODEL_SUBDIR).join("model.onnx")).expect("run `make models`");
        let r = int8_weights::keep_weights_int8(&onnx, MatMulWeights::KeepInt8).unwrap();
        // 6 layers x (Q, K, V, attention output, two feed-forward) and the word and position tables
        assert_eq!((r.matmuls, r.gathers), (36, 2));
        let again = int8_weights::keep_weights_int8(&onnx, MatMulWeights::KeepInt8).unwrap();
        assert!(again.model == r.model, "the same bytes every time");
        // with float matrix weights only the tables are rewritten
        let tables_only = int8_weights::keep_weights_int8(&onnx, MatMulWeights::FloatCopies).unwrap();
        assert_eq!((tables_only.matmuls, tables_only.gathers), (0, 2));
    }

    #[test]
    fn int8_kernels_give_the_float_weights_vectors() {
        let long = "The customer asked about the refund policy for damaged items. ".repeat(40);
        let texts = ["Paris is the capital of France.", "I could not log in after the update.", long.as_str()];
        let settings = EmbedderSettings::new(model_dir(), 2);
        let embed = |rewrite| Embedder::load_with(&settings, rewrite).unwrap().embed(&texts).unwrap();
        let as_in_the_file = embed(None);
        for rewrite in [MatMulWeights::KeepInt8, MatMulWeights::FloatCopies] {
            for (ours, theirs) in embed(Some(rewrite)).iter().zip(&as_in_the_file) {
                let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "{rewrite:?}: largest difference {worst}");
            }
        }
    }
}
