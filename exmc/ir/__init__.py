"""Model as data: the IR, its Builder and DSL, distributions, expressions and serialisation."""
from exmc.ir.builder import Builder, Model, ModelError, Variable
from exmc.ir.dsl import Deterministic, model
from exmc.ir.expr import Expr, ref, value

__all__ = ["Builder", "Model", "ModelError", "Variable", "Deterministic", "model", "Expr",
           "ref", "value"]
