"""Live monitoring of a run: the NVML sampler (gpu.jsonl), the Rich dashboard, `watch`, loss.png.

For a run (the engine's RunLifecycle, the synthetic run):
    sampler = start_sampler(run_dir)                    # gpu.jsonl for watchers; one per run, its starter stops it
    reporter = make_reporter(run_dir, sampler=sampler)  # LiveReporter on a TTY (draws that sampler), else plain
    ... reporter.on_start / on_log / on_event / on_end ...
    reporter.close(); sampler.stop(); save_loss_plot(run_dir)
"""
from wizard.monitor.live import LiveReporter, make_reporter, wants_live
from wizard.monitor.nvml import start_sampler
from wizard.monitor.panels import render
from wizard.monitor.state import DashboardState, RunFolderFollower


def save_loss_plot(run_dir, out=None):
    """loss.png from metrics.jsonl (matplotlib is imported only here)."""
    from wizard.monitor.plots import save_loss_plot as _save

    return _save(run_dir, out)


__all__ = ["LiveReporter", "make_reporter", "wants_live", "start_sampler", "render", "DashboardState",
           "RunFolderFollower", "save_loss_plot"]
