"""Live feedback in a notebook while a run trains: a progress bar, a loss plot redrawn in place, and one
text line per evaluation (the lines stay readable in a stored notebook, where widgets do not)."""

from __future__ import annotations


class LiveProgress:
    def __init__(self, name: str, evaluates: bool, redraws: int = 10):
        self.name, self.evaluates, self.redraws = name, evaluates, redraws
        self.steps, self.losses, self.eval_steps, self.eval_losses = [], [], [], []
        self.bar = self.handle = self.bar_handle = None

    def start(self, max_steps: int, done: int) -> None:
        from IPython.display import display
        from tqdm.auto import tqdm
        from tqdm.notebook import tqdm as notebook_tqdm

        self.max_steps = max_steps
        if issubclass(tqdm, notebook_tqdm):
            # shown under a display id, so close() can replace the widget with a text line: a stored notebook
            # (GitHub, nbviewer) shows the widget's text fallback, which would stay frozen at 0/N
            self.bar = tqdm(total=max_steps, initial=done, desc=self.name, display=False)
            self.bar_handle = display(self.bar.container, display_id=True)
        else:
            self.bar = tqdm(total=max_steps, initial=done, desc=self.name, leave=False)
        self.handle = display(display_id=True)
        if done:
            print(f"{self.name}: resuming from the checkpoint at step {done}")

    def step(self, step: int) -> None:
        self.bar.update(step - self.bar.n)
        if self.steps and step % max(self.max_steps // self.redraws, 1) == 0:
            self._redraw()

    def log(self, step: int, logs: dict) -> None:
        if "loss" in logs:
            self.steps.append(step)
            self.losses.append(logs["loss"])
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}")
        if "eval_loss" in logs:
            self.eval_steps.append(step)
            self.eval_losses.append(logs["eval_loss"])
            shown = {k[5:]: v for k, v in logs.items()
                     if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))}
            print(f"{self.name} · step {step}/{self.max_steps} · "
                  + " · ".join(f"val {k} {v:.4f}" for k, v in shown.items()))
            self._redraw()

    def _redraw(self) -> None:
        from .plot import plot_live

        if self.handle is None:  # outside IPython display() returns no handle: nothing to redraw into
            return
        self.handle.update(plot_live(self.name, self.steps, self.losses, self.eval_steps, self.eval_losses,
                                     self.max_steps))

    def close(self) -> None:
        if self.bar is None:
            return
        steps, elapsed = self.bar.n, self.bar.format_dict["elapsed"]
        self.bar.close()
        if self.bar_handle is not None:
            from IPython.display import Pretty

            self.bar_handle.update(Pretty(f"{self.name}: {steps}/{self.max_steps} steps in {elapsed:.0f} s"))

    def summary(self, history) -> None:
        print(f"{self.name} · done: {len(history.steps)} logged steps · {history.step_time_s:.3f} s/step · "
              f"{history.tokens_per_s:,.0f} tokens/s · peak memory {history.peak_memory_mb:,.0f} MB")


class ProgressBar:
    """A tqdm bar for a loop of known length that, in a notebook, is replaced on ``close()`` by one line
    ("desc: n/total steps in T s"), so a stored notebook shows the result, not a widget frozen at 0/N.
    ``unit`` names what is counted in that line (steps, runs, batches)."""

    def __init__(self, total: int, desc: str, unit: str = "steps"):
        from IPython.display import display
        from tqdm.auto import tqdm
        from tqdm.notebook import tqdm as notebook_tqdm

        self.desc, self.total, self.unit, self.handle = desc, total, unit, None
        if issubclass(tqdm, notebook_tqdm):
            self.bar = tqdm(total=total, desc=desc, display=False)
            self.handle = display(self.bar.container, display_id=True)
        else:
            self.bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        done, elapsed = self.bar.n, self.bar.format_dict["elapsed"]
        self.bar.close()
        line = f"{self.desc}: {done}/{self.total} {self.unit} in {elapsed:.0f} s"
        if self.handle is not None:
            from IPython.display import Pretty

            self.handle.update(Pretty(line))
        else:
            print(line)
