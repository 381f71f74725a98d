"""visionmix.components: one call registers every component a config may name, without the Runner or the zoo."""
import subprocess
import sys

from tests.tools.helpers import ROOT, tool_env


def test_register_all_modules_registers_parts_and_hooks_without_the_runner():
    code = ("import sys\nfrom visionmix.components import register_all_modules\nregister_all_modules()\n"
            "from mmengine.registry import HOOKS\nfrom visionmix.registry import FFNS, MIXERS\n"
            "print('attention' in MIXERS.module_dict, 'mlp' in FFNS.module_dict, 'NaNGuardHook' in HOOKS.module_dict,"
            " 'SampleGridHook' in HOOKS.module_dict, 'visionmix.engine.runner' in sys.modules, "
            "'visionmix.hub' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=tool_env(), capture_output=True, text=True)
    assert out.stdout.split() == ["True", "True", "True", "True", "False", "False"], out.stderr
