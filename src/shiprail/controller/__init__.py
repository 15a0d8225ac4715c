"""The rollout controller: reconciles active releases through routers and metric providers."""

from shiprail.controller.reconciler import ACTOR, Controller, rollout_plan

__all__ = ["ACTOR", "Controller", "rollout_plan"]
