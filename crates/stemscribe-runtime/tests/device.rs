//! The device choice on ONNX Runtime's CPU build (what CI installs): `cuda` is refused with
//! the command that installs the GPU build, `auto` runs on the CPU without reporting a
//! fallback, and a model loads and runs either way. Needs `scripts/setup.sh` to have run.

use std::path::PathBuf;

use stemscribe_runtime::{
    CudaError, Device, DeviceUse, Input, Runtime, RuntimeConfig, RuntimeError,
};

fn installed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/installed")
}

fn runtime(device: Device) -> Result<Runtime, RuntimeError> {
    Runtime::new(&RuntimeConfig {
        library: Some(installed().join("lib/libonnxruntime.so")),
        models_dir: Some(installed()),
        device,
        ..RuntimeConfig::default()
    })
}

#[test]
fn the_cpu_build_refuses_cuda_and_runs_auto_on_the_cpu() {
    let error = runtime(Device::Cuda).unwrap_err();
    assert!(
        matches!(error, RuntimeError::Cuda(CudaError::CpuBuild)),
        "{error}"
    );
    assert!(
        error.to_string().contains("scripts/setup.sh --gpu"),
        "{error}"
    );

    for device in [Device::Auto, Device::Cpu] {
        let runtime = runtime(device).unwrap();
        let model = runtime.model("swift-f0.onnx").unwrap();
        assert_eq!(runtime.device_use(), DeviceUse::Cpu { fallback: None });
        let audio = vec![0.0f32; 16_000];
        let outputs = model
            .run(
                &[
                    Input {
                        name: "audio",
                        shape: &[1, audio.len()],
                        data: &audio,
                    },
                    Input {
                        name: "fmin",
                        shape: &[],
                        data: &[46.875],
                    },
                    Input {
                        name: "fmax",
                        shape: &[],
                        data: &[2093.75],
                    },
                ],
                &["pitch", "confidence"],
            )
            .unwrap();
        assert_eq!(outputs.len(), 2);
        assert!(!outputs[0].data.is_empty());
        let missing = model.run(&[], &["nothing"]).unwrap_err();
        assert!(matches!(missing, RuntimeError::Run { .. }), "{missing}");
        assert!(
            std::error::Error::source(&missing).is_some(),
            "ort's error is kept"
        );
    }
}
