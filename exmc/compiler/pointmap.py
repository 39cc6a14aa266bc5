"""The point map: flat unconstrained vector <-> named, shaped constrained values."""
from __future__ import annotations

import numpy as np

from exmc.ir.evaluate import evaluate


class PointMap:
    """Layout of the sampler's flat vector and of the traced outputs.

    Parameters
    ----------
    free : list of Slot
        One slot per sampled variable in the unconstrained vector of length ``dim``.
    outputs : list of Slot
        One slot per traced value (sampled variables constrained, then deterministics
        in declaration order) in the output vector of length ``output_size``.
    transforms : dict
        Variable name -> (Transform, lower, upper): its transform and support
        expressions (None where unbounded).
    """

    def __init__(self, free, outputs, transforms, model):
        self.free, self.outputs, self.transforms = free, outputs, transforms
        self.dim = sum(s.size for s in free)
        self.output_size = sum(s.size for s in outputs)
        self.model = model

    @property
    def names(self):
        return [s.name for s in self.free]

    def unflatten(self, flat):
        """Dict name -> array of shape (*leading, *slot.shape) from (..., output_size) values."""
        flat = np.asarray(flat)
        lead = flat.shape[:-1]
        return {s.name: flat[..., s.offset:s.offset + s.size].reshape(lead + s.shape)
                for s in self.outputs}

    def unconstrain(self, values: dict, fill):
        """Flat unconstrained vector from constrained ``values``; ``fill(slot)`` supplies the rest.

        Variables are visited in dependency order so bounds that refer to other
        variables (``Uniform(lower="a")``) use their values.
        """
        known = {v.name: v.data for v in self.model.variables if v.kind == "obs"}
        slots = {s.name: s for s in self.free}
        x = np.zeros(self.dim)
        for name, shape in self.model.validate():
            var = self.model[name]
            if var.kind == "det":
                known[name] = evaluate(var.expr, known)
                continue
            if name not in slots:
                continue
            slot = slots[name]
            transform, *bounds = self.transforms[name]
            lower, upper = (None if b is None else evaluate(b, known) for b in bounds)
            if name in values:
                given = np.asarray(values[name], dtype=float)
                if given.shape != shape:
                    raise ValueError(f"init value for {name!r} has shape {given.shape}, "
                                     f"expected {shape}")
                try:
                    z = transform.inverse(given, lower, upper)
                except ValueError as err:
                    raise ValueError(f"init value for {name!r}: {err}") from None
            else:
                z = np.asarray(fill(slot), dtype=float).reshape(slot.shape)
            x[slot.offset:slot.offset + slot.size] = np.ravel(z)
            known[name] = transform.forward(z, lower, upper)
        return x

    def unconstrain_draws(self, values: dict):
        """Unconstrained draws (n, dim) from constrained ``values`` (name -> (n, *shape)) of every
        sampled variable: ``unconstrain`` for many draws at once (a posterior read back).

        Bounds that refer to other variables are evaluated per draw; a vector
        transform (simplex, Cholesky factor, ...) inverts one draw at a time.
        """
        from exmc.ir.evaluate import evaluate_batched
        from exmc.ir.forward import needed_variables

        model, shapes = self.model, dict(self.model.validate())
        n = len(next(iter(values.values()))) if values else 1
        known = {v.name: v.data[None] for v in model.variables if v.kind == "obs"}
        known.update({name: np.asarray(v, dtype=float) for name, v in values.items()})
        bounds = [e for s in self.free for e in self.transforms[s.name][1:] if e is not None]
        refs = {name for e in bounds for name in e.references()}
        needed = needed_variables(model, refs, known)
        for name in shapes:  # deterministics the bounds refer to, in dependency order
            if name in needed and name not in known:
                known[name] = evaluate_batched(model[name].expr, known, shapes)
        x = np.empty((n, self.dim))
        for slot in self.free:
            transform, *limits = self.transforms[slot.name]
            given, rank = known[slot.name], len(shapes[slot.name])
            try:
                if transform.vector:
                    z = np.stack([transform.inverse(row) for row in given])
                else:
                    lower, upper = (None if b is None else _lined_up(
                        evaluate_batched(b, known, shapes), rank) for b in limits)
                    z = transform.inverse(given, lower, upper)
            except ValueError as err:
                raise ValueError(f"values of {slot.name!r}: {err}") from None
            x[:, slot.offset:slot.offset + slot.size] = np.reshape(z, (n, -1))
        return x


def _lined_up(batched, rank):
    """A batched value (draws, *shape) with ones inserted: broadcasts against (draws, rank axes)."""
    own = batched.shape[1:]
    return batched.reshape(batched.shape[:1] + (1,) * (rank - len(own)) + own)
