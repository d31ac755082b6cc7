"""SB3's optimizer in ``policy_kwargs`` (``optimizer_class``, ``optimizer_kwargs``) as numddpg's
Adam hyperparameters (numddpg.engine.hyperparameters), and back for a loaded model.

    optimizer_class     torch.optim.Adam (SB3's default) or torch.optim.AdamW, matched by
                        name (numddpg never imports torch); others are refused
    optimizer_kwargs    weight_decay -> weight_decay (default: AdamW's 1e-2, Adam's 0)
                        betas (b1, b2) -> adam_beta1, adam_beta2
                        eps -> adam_eps
                        decoupled_weight_decay (Adam's keyword; AdamW is True)
                                      -> decoupled_weight_decay
                        amsgrad, maximize: False only (their defaults)

``lr`` is SB3's (``learning_rate``); any other keyword is refused, naming it.
"""
from ..checks import check_bool
from ..engine.hyperparameters import DDPG_TABLE
from ..engine.hyperparameters import check as check_hyperparameter

OPTIMIZERS = ("Adam", "AdamW")
# optimizer_kwargs keyword: the hyperparameter it sets
KEYWORDS = {"weight_decay": "weight_decay", "eps": "adam_eps",
            "decoupled_weight_decay": "decoupled_weight_decay"}
FALSE_ONLY = ("amsgrad", "maximize")     # their defaults, which numddpg's Adam is
ADAMW_WEIGHT_DECAY = 1e-2                # torch.optim.AdamW's default


def _name(optimizer_class):
    """The class's name (or an instance's class's)."""
    cls = optimizer_class if isinstance(optimizer_class, type) else type(optimizer_class)
    return getattr(cls, "__name__", None)


def optimizer_hyperparameters(policy_kwargs, specs):
    """{weight_decay, decoupled_weight_decay, adam_beta1, adam_beta2, adam_eps} from SB3's
    ``policy_kwargs`` (a dict or None), each value checked by its spec in ``specs`` under the
    name the user gave it; ValueError / TypeError for what numddpg's Adam cannot do."""
    kw = policy_kwargs or {}
    given = kw.get("optimizer_class")
    name = "Adam" if given is None else _name(given)
    if name not in OPTIMIZERS:
        raise ValueError(f"policy_kwargs['optimizer_class']={given!r}: numddpg's optimizer is "
                         "Adam, as torch.optim.Adam or torch.optim.AdamW (decoupled weight "
                         "decay); other optimizers are not supported")
    options = kw.get("optimizer_kwargs") or {}
    if not isinstance(options, dict):
        raise TypeError(f"policy_kwargs['optimizer_kwargs'] must be a dict or None, got "
                        f"{options!r}")
    where = "policy_kwargs['optimizer_kwargs']"
    known = {"betas", *KEYWORDS, *FALSE_ONLY} - ({"decoupled_weight_decay"} if name == "AdamW"
                                                  else set())
    unknown = sorted(set(options) - known, key=str)
    if unknown:
        raise ValueError(f"{where} has {unknown}, which numddpg's Adam does not take ({name} "
                         f"keywords it takes: {sorted(known)}; lr is learning_rate)")
    for key in FALSE_ONLY:
        if check_bool(f"{where}[{key!r}]", options.get(key, False)):
            raise ValueError(f"{where}[{key!r}]=True is not supported: numddpg's Adam is "
                             f"torch.optim.{name}'s with {key}=False")
    decoupled = check_bool(f"{where}['decoupled_weight_decay']",
                           options.get("decoupled_weight_decay", name == "AdamW"))
    betas = options.get("betas", (specs["adam_beta1"].default, specs["adam_beta2"].default))
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{where}['betas'] must be a pair (beta1, beta2), got {betas!r}")
    hp = {"weight_decay": options.get("weight_decay",
                                      ADAMW_WEIGHT_DECAY if name == "AdamW" else 0.0),
          "adam_beta1": betas[0], "adam_beta2": betas[1],
          "adam_eps": options.get("eps", specs["adam_eps"].default)}
    shown = {"weight_decay": "['weight_decay']", "adam_beta1": "['betas'][0]",
             "adam_beta2": "['betas'][1]", "adam_eps": "['eps']"}
    hp = {key: check_hyperparameter(where + shown[key], value, specs[key])
          for key, value in hp.items()}
    hp["decoupled_weight_decay"] = decoupled
    return hp


def optimizer_policy_kwargs(hp):
    """The policy_kwargs entries that give numddpg's hyperparameters ``hp`` back (for a loaded
    model's ``policy_kwargs``): {} for SB3's default Adam, else optimizer_kwargs for
    torch.optim.Adam (its keyword decoupled_weight_decay=True is AdamW)."""
    options = {}
    if hp["weight_decay"] != 0:
        options.update(weight_decay=hp["weight_decay"],
                       decoupled_weight_decay=hp["decoupled_weight_decay"])
    betas = (hp["adam_beta1"], hp["adam_beta2"])
    if betas != (DDPG_TABLE["adam_beta1"].default, DDPG_TABLE["adam_beta2"].default):
        options["betas"] = betas
    if hp["adam_eps"] != DDPG_TABLE["adam_eps"].default:
        options["eps"] = hp["adam_eps"]
    return {"optimizer_kwargs": options} if options else {}
