"""The law object: one fitted law, as the stages after its fit read it.

A fitted law is written to JSON (`loss_law.json`, `error_law*.json`) by `lmscale fit-loss` and
`lmscale fit-error`: its parameters (also at top level), their 95% intervals, the bootstrap refits
(`bootstrap.samples`), the noise of its fit points, its fit set. `LossLaw` and `ErrorLaw` hold that
record unchanged (`from_json(record).to_json() == record`, in the same key order, so a file written
through the object is the file written before it) and answer what the stages ask of it: a
prediction at (N, D) or (C, M) for the loss law, at L for the error law, the same under every
bootstrap refit, the loss law in Chinchilla's parameters. The form of a loss law (`forms.LossForm`)
is looked up once, here: no code outside `lmscale.laws` asks a law which form it has.

Like lmfit's ModelResult, a law is read-only; its record can be read as a mapping too
(`law["fit_set"]`, `{**law}`), as the JSON it is.

A law is valid or refused: one outside its form's physical region (`Law.problems`) is refused in one
line (`LawError`) by the fit job that fitted it (lmscale.analysis.fits.check_fitted) and by every
stage that reads it from a file (`read_law`), which predicts nothing from it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmscale.io.files import read_json
from lmscale.laws import fitting, forms


@dataclass(frozen=True)
class FitPoint:
    """A fit point as a refusal names it: its model, where its value was read (`source`: a table's
    file, or the table itself; `row`: "line 14", "row 3", "lines 40-51") and how far off the law
    it lies ("4.1 sd off the law")."""

    model: str
    source: str
    row: str
    off: str

    def __str__(self) -> str:
        return f"{self.model} ({self.source}, {self.row}: {self.off})"


class LawError(ValueError):
    """A law outside its form's physical region (or a prediction no law inside it makes), refused in
    one line: what is outside, for a fitted law its farthest fit point (`point`, the one a damaged
    row most likely is), and what to do."""

    def __init__(self, statement: str, point: FitPoint | None = None, fix: str = ""):
        super().__init__(statement)
        self.statement, self.point, self.fix = statement, point, fix

    def __str__(self) -> str:
        farthest = [f"its farthest fit point is {self.point}"] if self.point is not None else []
        return "; ".join([self.statement, *farthest, *([self.fix] if self.fix else [])])


class Law(Mapping):
    """A fitted law: its JSON record, read-only, and what every law answers (parameters, noise,
    fit set, bootstrap refits)."""

    __slots__ = ("_record",)
    names: tuple[str, ...] = ()  # the parameters, in the order of the bootstrap's samples

    def __init__(self, record: Mapping):
        object.__setattr__(self, "_record", record)

    def __setattr__(self, name, value):
        raise AttributeError(f"a {type(self).__name__} is read-only")

    # ---- the JSON record

    @classmethod
    def from_json(cls, record: Mapping):
        """The law of a JSON record as `fit-loss` / `fit-error` write it (read_json of the file)."""
        return cls(record)

    @classmethod
    def of(cls, law: Mapping):
        """`law` as this class: itself if it is one, else the law of its JSON record."""
        return law if isinstance(law, cls) else cls.from_json(law)

    def to_json(self) -> dict:
        """The JSON record, key for key and in order as it was read or fitted."""
        return copy.deepcopy(dict(self._record))

    def __getitem__(self, key: str) -> Any:
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.params)!r})"

    # ---- what every law answers

    @property
    def params(self) -> dict[str, float]:
        return self._record["params"]

    @property
    def noise(self) -> dict:
        """The noise of the fit points (`uncertainty.PointNoise.as_dict`); empty for a law given by hand."""
        return self._record.get("noise") or {}

    @property
    def fit_set(self) -> list[dict]:
        """The fit points (model, size, M, the measured and predicted values); none for a law given by hand."""
        return self._record.get("fit_set") or []

    @property
    def rmse(self) -> float | None:
        """The root mean square residual of the fit points (None for a law given by hand)."""
        return self._record.get("rmse")

    @property
    def bootstrap(self) -> dict:
        return self._record.get("bootstrap", {})

    region: dict[str, tuple[str, float]] = {}  # the law's physical region (forms.outside_region)
    equation = "the law"  # how a refusal names it
    kind = "law"  # "loss law", "error law": how a message names it

    def problems(self, params: Mapping[str, float] | None = None) -> list[str]:
        """What puts the law (or a refit's `params`) outside its form's physical region, one phrase
        per parameter ("eta = -0.136, not > 0"); empty for a law inside it."""
        return forms.outside_region(dict(self.params if params is None else params), self.region)

    def refits_outside(self) -> int:
        """How many bootstrap refits lie outside the region."""
        return sum(bool(self.problems(sample)) for sample in self.samples())

    def check(self, where: str) -> Law:
        """The law itself if it lies inside its form's region; else LawError naming `where` (the
        file it was read from), the parameters outside and the region: no stage predicts from it."""
        problems = self.problems()
        if problems:
            raise LawError(f"{where}: {' and '.join(problems)}: this {self.kind} lies outside {self.equation}'s "
                           f"region ({forms.region_bounds(self.region)}), so nothing is predicted from it",
                           fix="fit it again (the fit refuses such a law, naming its farthest fit point) or "
                               "restore the file")
        return self

    def refits_outside_note(self) -> str:
        """The bootstrap refits outside the region, as a fit's log line reports them ("12 of 200
        bootstrap refits lie outside Eq. 4's region (E < 0: 12); kept"); empty when none is."""
        samples = self.samples()
        outside = self.refits_outside()
        if not outside:
            return ""
        counts = ", ".join(f"{bound}: {count}" for bound, count in forms.outside_counts(samples, self.region).items())
        return f"{outside} of {len(samples)} bootstrap refits lie outside {self.equation}'s region ({counts}); kept"

    def samples(self) -> list[dict[str, float]]:
        """The bootstrap refits, each as its parameters by name (none for a law fitted without them)."""
        return fitting.law_samples(self._record, self.names)

    @classmethod
    def fitted(cls, about: dict, params: dict, refits: list[dict], requested: int, seed: int, noise: dict,
               rmse: float, fit_set: list[dict]):
        """The law of a fit: `about` (what it was fitted to, how) first, then its parameters, their
        intervals and the bootstrap refits, the points' noise, the rmse and the fit set."""
        names = cls({**about, "params": params}).names  # a loss law's come with its form
        return cls({**about, **fitting.fitted_law(params, names, refits, requested, seed),
                    "noise": noise, "rmse": rmse, "fit_set": fit_set})


class LossLaw(Law):
    """A fitted loss law: L(N, D), or L(C, M) with C = 6 N D and M = D / N, in the form it was fitted
    in (`forms.LOSS_FORMS`: Eq. 4 of Gadre et al. or Chinchilla's)."""

    __slots__ = ("form",)

    def __init__(self, record: Mapping):
        super().__init__(record)
        object.__setattr__(self, "form", forms.loss_form(record["form"]))

    kind = "loss law"

    @property
    def region(self) -> dict[str, tuple[str, float]]:
        return self.form.region

    @property
    def equation(self) -> str:
        return "Eq. 4" if self.form.name == "gadre" else f"the {self.form.name} form"

    @classmethod
    def given(cls, form: str, params: Mapping[str, float]) -> LossLaw:
        """A law given by its form and parameters alone (no noise, fit set or refits)."""
        return cls({"form": form, "params": dict(params)})

    @property
    def names(self) -> tuple[str, ...]:
        return self.form.params

    @property
    def method(self) -> str | None:
        return self._record.get("method")

    def predict(self, N, D) -> np.ndarray:
        """The loss of a run of N parameters trained on D tokens."""
        return self.form.predict(self._record["params"], N, D)

    def predict_at(self, C, M) -> np.ndarray:
        """The loss of a run of compute C = 6 N D at the token multiplier M = D / N."""
        return self.form.predict_at(self._record["params"], C, M)

    def with_params(self, params: Mapping[str, float]) -> LossLaw:
        """The law of the same form with other parameters (a refit, a step of a derivative)."""
        return LossLaw.given(self.form.name, params)

    def refits(self) -> list[LossLaw]:
        """The bootstrap refits as laws."""
        return [self.with_params(sample) for sample in self.samples()]

    def sample_predictions(self, N, D) -> np.ndarray | None:
        """The loss of the runs (N, D) under every bootstrap refit (refits x runs); None without refits."""
        samples = self.samples()
        return np.array([self.form.predict(s, N, D) for s in samples]) if samples else None

    def chinchilla(self, params: Mapping[str, float] | None = None) -> forms.Chinchilla:
        """The law (or a refit's `params`) in Chinchilla's parameters, L(N, D) = E + A N^-alpha + B D^-beta."""
        return self.form.chinchilla(self._record["params"] if params is None else params)

    @property
    def optimum_is_fixed(self) -> bool:
        """Whether the compute-optimal M = D / N is the same at every budget (Eq. 4: M* = (b / a)^(1 / (2 eta)))."""
        return self.form.optimal_multiplier is not None

    def optimal_multiplier(self) -> float | None:
        """The compute-optimal M = D / N where it is the same at every budget (Eq. 4), else None."""
        if self.form.optimal_multiplier is None:
            return None
        return self.form.optimal_multiplier(self._record["params"])


class ErrorLaw(Law):
    """A fitted error law, paper Eq. 5: Err(L) = eps - k exp(-gamma L), over the tasks it averages."""

    __slots__ = ()
    names = forms.ERROR_PARAMS
    region = forms.ERROR_REGION
    equation = "Eq. 5"
    kind = "error law"

    @classmethod
    def given(cls, params: Mapping[str, float]) -> ErrorLaw:
        return cls({"params": dict(params)})

    @property
    def tasks(self) -> list[str]:
        return self._record["tasks"]

    def predict(self, L) -> np.ndarray:
        """The average top-1 error at loss L."""
        return forms.error_law(L, **self._record["params"])

    def chained(self, loss_samples) -> list[np.ndarray]:
        """The error under each bootstrap refit at the loss the loss law's refit of the same index
        predicts (`loss_samples`, refits x runs): the i-th loss refit feeds the i-th error refit."""
        samples = self.samples()
        count = min(len(samples), 0 if loss_samples is None else len(loss_samples))
        return [forms.error_law(loss_samples[i], **samples[i]) for i in range(count)]

    def log_slope(self, L, predicted):
        """d log Err / d log L = k gamma exp(-gamma L) L / Err at loss L, `predicted` the law's Err
        there: how a loss's error carries into the error rate's."""
        params = self._record["params"]
        return params["k"] * params["gamma"] * np.exp(-params["gamma"] * L) * L / predicted

    def loss_for(self, err: float) -> float:
        """The inverse: the loss at which Err(L) = err (nan at or beyond eps)."""
        return forms.loss_for_error(err, **self._record["params"])


def loss_parameters(form: str) -> tuple[str, ...]:
    """The parameters of the loss form named `form` (a fit set needs at least as many runs)."""
    return forms.loss_form(form).params


def read_law(path: str | Path, kind: type[Law]) -> Law:
    """The law a fit wrote to `path`, as `kind` (LossLaw, ErrorLaw), checked (`Law.check`): a file
    that holds no such law, or a law outside its form's region, is refused in one line naming the
    file. Every stage that predicts from a law file reads it here."""
    record = read_json(path)
    needed = ("params", "form") if kind is LossLaw else ("params",)
    if not isinstance(record, dict) or not all(key in record for key in needed) or not isinstance(
            record["params"], dict):
        raise LawError(f"{path}: not a {kind.kind} file (it needs {' and '.join(map(repr, needed))}, as the fit "
                       "writes them)")
    try:
        law = kind.from_json(record)
    except ValueError as error:  # a form no longer known
        raise LawError(f"{path}: {error}") from None
    if not set(law.names) & set(law.params):  # another law's file (an error law's for a loss law's)
        raise LawError(f"{path}: not a {kind.kind} file: its parameters are {', '.join(law.params)}, a {kind.kind}'s "
                       f"{', '.join(law.names)}")
    return law.check(str(path))
