"""Reinforcement learning that teaches a reasoning model to stop thinking early.

`sgrpo`: S-GRPO serial-group rollouts (one reasoning path, exits at several positions, forced
answers) and decaying rewards, built on ponder's engines, exit primitive and verifiers.
"""

from ponder.rl.sgrpo import Group, Member, SGRPOConfig, decaying_rewards, exit_positions, serial_group

__all__ = ["SGRPOConfig", "Group", "Member", "serial_group", "decaying_rewards", "exit_positions"]
