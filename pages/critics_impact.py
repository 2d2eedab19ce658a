"""Critics and impact: the objections to ViT, what came after, and the talk's four predictions."""
import pandas as pd
import streamlit as st

from pages._ui import cache
from pages._ui.sidebar import sidebar
from pages._ui.widgets import header, row
from pages._ui.present import page_link
from vit_core.analysis import lecture as lec

ctx = sidebar()
cfg = ctx.loaded.model.cfg
header("Critics and impact",
       "ViT was not greeted only with applause. Three objections came up at once; each had a point, and each "
       "was partly answered by the work that followed.")

tab_names = ["Data hunger", "Cost", "Just convolutions?", "What came after", "Four predictions"]
t_data, t_cost, t_conv, t_after, t_pred = st.tabs(tab_names, key="crit_tab", bind="query-params")

with t_data:
    st.markdown("""
### "It only wins with a lot of data"
**True, as published.** Trained on ImageNet alone (1.3 million images), the paper's ViTs are *worse* than
ResNets of similar size; they overtake them only when pre-trained on ImageNet-21k (14 million) or JFT-300M
(300 million images). A convolution builds in two assumptions about images, that nearby pixels belong together
(locality) and that a pattern means the same thing anywhere (translation equivariance). A ViT has to learn them
from data; the paper's Figures 3 and 4 show the cross-over as the pre-training set grows.

**Partly answered since.** DeiT (Touvron et al., Dec 2020) trained ViTs on ImageNet alone, on one 8-GPU
machine in under three days, with strong augmentation, regularisation and distillation from a CNN teacher.
*How to train your ViT* (Steiner et al., 2021) found that augmentation and regularisation can be worth about
ten times more data. Data still helps more for ViTs than for CNNs.

**See it happen.** Train a small ViT live on this computer and watch how it learns (and over-fits) with little
data.""" + (" The bundled Shapes ViT behind these pages was trained with the same code."
            if ctx.loaded.source == "bundled" else ""))
    page_link("pages/train.py", "Train a ViT live", icon=":material/model_training:")

with t_cost:
    price = lec.DEFAULT_PRICE_PER_CORE_HOUR
    rows = [(lec.MODEL_LABELS[k], lec.CORE_DAYS[k], lec.training_cost(lec.CORE_DAYS[k], price)) for k in lec.MODEL_LABELS]
    st.markdown(f"""
### "Training from scratch is very expensive"
**True.** The best model took {lec.CORE_DAYS['vit_h14_jft']:,} TPUv3-core-days to pre-train (a core-day is
one TPU v3 core busy for 24 hours): at about
USD {price:.2f} per core-hour that is {lec.CORE_DAYS['vit_h14_jft']:,} x 24 x {price} =
**USD {lec.training_cost(lec.CORE_DAYS['vit_h14_jft'], price):,.0f}** for a single run, on a data set
(JFT-300M) that is not public.

**But not more than the CNNs it beat.** The CNN baselines in the same table needed more compute, and the
paper's scaling study found ViTs reach the same accuracy with roughly 2 to 4 times less pre-training compute
than ResNets. And few people pre-train: fine-tuning released weights costs a tiny fraction of a pre-training
run, which is how most ViTs are used (including the ImageNet models this app can load).
""")
    cache.table("crit_costs", (price,), lambda: pd.DataFrame(
        [(m, f"{d:,}", f"{c:,.0f}") for m, d, c in rows],
        columns=["Model", "TPUv3-core-days", f"USD at {price:.2f}/core-hour"]).set_index("Model"))
    page_link("pages/vit_in_numbers.py", "ViT in numbers: change the price")

with t_conv:
    P = cfg.patch_size
    st.markdown(f"""
### "Is it really so different from a convolution?"
**In part, no.** The patch embedding *is* a convolution: kernel {P} x {P}, stride {P}, one filter per output
dimension (the app checks this on every image). Cordonnier et al. (2020) proved that a self-attention layer
with enough heads can express any convolution, and in the paper's Figure 7 some heads in the early layers do
attend locally, like a small kernel.

**In part, yes.** Other heads look across the whole image from the very first layer, which a stack of small
convolutions only achieves after many layers. The attention weights depend on the image itself, not only on
relative position. And nothing local is built in: the model learns where to look.

**The honest summary.** Later work blurred the line from both sides: Swin (2021) brought local windows and
a CNN-like pyramid back into Transformers; ConvNeXt (Liu et al., 2022) modernised a ResNet with ideas from
Transformers and matched Swin. Much of the gap came from training recipes and scale, not from attention alone.
""")
    c1, c2 = row(2)
    page_link("pages/patch_embedding.py", "2 · Patch embedding: the convolution inside ViT", container=c1)
    page_link("pages/attention.py", "5 · Attention maps: local and global heads", container=c2)

with t_after:
    after = [e for e in lec.HISTORY if e.date > "2020-10-22"]
    st.markdown("### What came after\n" + "".join(f"- **{e.name}** ({e.who}, {e.date[:4]}): {e.line}\n" for e in after)
                + """- **BEiT** (Bao et al., 2021): BERT-style pre-training of ViTs by predicting masked patches.
- **Scaling up**: ViT-G/14 with about 2 billion parameters (Zhai et al., 2021); ViT-22B (Dehghani et al., 2023).
- **Everywhere**: ViT image encoders became the standard front end of image-text models and of general-purpose
  vision systems, e.g. Segment Anything (Kirillov et al., 2023) and DINOv2 (Oquab et al., 2023).

Five years on, Transformers are the default backbone for large vision models, while well-trained CNNs remain
competitive and are still widely used where data or compute is small.
""")
    page_link("pages/history.py", "A brief history (timeline)")

with t_pred:
    st.markdown("### The talk's four predictions, and how they turned out")
    cache.table("crit_predictions", (), lambda: pd.DataFrame([
        ("Image captioning with ViT encoders",
         "ViT encoders, often CLIP's, feed the text decoders of captioning and vision-language models "
         "(e.g. BLIP 2022, CoCa 2022, LLaVA 2023).", "Largely came true"),
        ("BERT-like image embeddings",
         "Self-supervised ViT pre-training by masked patches (BEiT, MAE) and by self-distillation (DINO, "
         "DINOv2) gives general-purpose image features.", "Came true"),
        ("Even bigger models",
         "ViT-G/14 (about 2B parameters, 2021), ViT-22B (2023).", "Came true"),
        ("Smarter patching",
         "Shifted windows (Swin), token merging (ToMe, 2022), flexible patch sizes (FlexiViT, 2022), native "
         "aspect ratios (NaViT, 2023); yet plain square patches of 14 or 16 pixels remain the default.",
         "Partly"),
    ], columns=["Prediction", "What happened", "Verdict"]).set_index("Prediction"))
    st.caption("A short summary with examples, not a survey; follow the names to the papers.")

# --- What did this model learn? ----------------------------------------------------------------
# Shortcut learning and its cure, shown live: the same scene with and without its class stripes,
# read by stage 1 of the bundled recipe (striped images only) and by the final bundled model
# (stage 2: stripes off in half of each batch). Always these two bundled models, whatever the
# sidebar chose: the lesson is about how they were trained. The computation lives in
# vit_core.analysis.shortcut and is cached per (model, class, scene) in pages/_ui/cache.py, so a
# rerun by one of a hundred students costs dictionary look-ups; this page only lays it out. Its
# imports stay here, with the section they serve, so the section can be read (and moved) as one piece.
from pages._ui.site import DEFAULT_SPEC, STAGE1_SPEC, shortcut_class

SCENE_TITLES = ("With its class stripes (as in training)", "The same scene, stripes off")


def _cell(spec: str, cls: int, scene: int, names: list[str], i: int, r, ov) -> None:
    """One model's reading of one scene: its rollout overlay and what it predicted."""
    # Encoded once per view and shared: st.image would re-encode a numpy array on every rerun.
    st.image(cache.encoded("shortcut_rollout", (spec, cls, scene, i), lambda: ov, fmt="png", url=True),
             caption="attention rollout (last layer, [CLS])", width=260, output_format="PNG")
    verdict = ":green[right]" if r.correct else ":red[wrong]"
    st.markdown(f"Prediction: **{names[r.top]}** (p = {r.top_p:.2f}), {verdict}. "
                f"Probability of *{names[r.label]}*: {r.true_p:.2f}. "
                f"Rollout on the object: {r.on_object:.1f}x chance.")


# The rule and the heading open the section's text: one element, not three (st.divider is
# Markdown's "---"; "## " is st.header's h2, its anchor the same slug).
SECTION = "---\n\n## What did this model learn?"
# cache.model_status: a file check re-asked every 20 s, not on each of a class's reruns.
if cache.model_status(DEFAULT_SPEC).state == "unavailable":
    st.markdown(SECTION)
    st.info("The bundled Shapes ViT is not built on this machine (`make model`), so there is nothing to show here.")
else:
    has_stage1 = cache.model_status(STAGE1_SPEC).state != "unavailable"
    # (row title, spec) of each model shown; stage 1 first: the shortcut, then its cure.
    models = ([("Stage 1: trained on striped images only", STAGE1_SPEC)] if has_stage1 else []) + [
        ("Final model (stage 2: stripes off in half of each batch)", DEFAULT_SPEC)]
    names = list(cache.get_model(DEFAULT_SPEC).class_names)
    st.markdown(
        f"{SECTION}\n\n"
        "The Shapes ViT behind these pages was trained in two stages on images whose object carries "
        "**class stripes**: besides its outline, each shape is filled with a stripe pattern whose angle "
        "and frequency depend on the class, so both cues name the class. **Stage 1** saw only striped "
        "images. **Stage 2** started from stage 1's weights and trained on batches in which half the "
        "images have the stripes off. Which cue did each stage learn? Below, the same scene is drawn "
        "twice: as in training, and with the stripes turned off (`fill_texture = 0`). Object, position, "
        "size, rotation, colours and background are identical; only the stripes differ. Both models "
        "read both scenes, live.")
    c1, c2 = row(2)
    cls_name = c1.selectbox("Class", names, index=shortcut_class(names),
                            key="shortcut_class", bind="query-params")
    scene = c2.number_input("Scene", 0, 999, 0, key="shortcut_scene", bind="query-params",
                            help="Another scene of the same class: new position, size, rotation, colours and "
                                 "background. Scenes are numbered, not picked: scene 0 is simply the first one drawn.")
    cls, scene = names.index(cls_name), int(scene)
    if not has_stage1:
        st.info("Stage 1's weights (`assets/models/shapes-vit-stage1/`) are not on this machine "
                "(`make model` writes them), so only the final model is shown: the cure without the "
                "shortcut it cured.")
    pairs = {spec: cache.shortcut_pair(spec, cls, scene) for _, spec in models}
    # Both models read the same two scenes (same seed and data config): show each scene once, on top.
    scenes = pairs[DEFAULT_SPEC][0]
    for col, r, title, i in zip(st.columns(2), scenes, SCENE_TITLES, range(2)):
        with col:
            st.markdown(f"**{title}**")
            st.image(cache.encoded("shortcut_scene", (DEFAULT_SPEC, cls, scene, i), lambda r=r: r.image, fmt="png", url=True),
                     caption="what the models see", width=260, output_format="PNG")
    for row_title, spec in models:
        st.markdown(f"##### {row_title}")
        readings, overlays = pairs[spec]
        for col, r, ov, i in zip(st.columns(2), readings, overlays, range(2)):
            with col:
                _cell(spec, cls, scene, names, i, r, ov)

    counts = {spec: cache.shortcut_class_counts(spec, cls) for _, spec in models}
    n = counts[DEFAULT_SPEC]["n"]
    said = "; ".join(
        f"{'stage 1' if spec == STAGE1_SPEC else 'the final model'} is right on **{c['with_stripes']:.0%}** "
        f"with the stripes and **{c['without_stripes']:.0%}** without them" for spec, c in counts.items())
    st.markdown(
        f"**Not just this scene.** On {n} other scenes of *{cls_name}*, drawn both ways: {said}. Over all "
        "ten classes the model card (`assets/models/shapes-vit/MODEL_CARD.md`; three fresh seeds of 1,000 "
        "scenes, chance 0.10) measures stage 1 at **0.948** with the stripes and **0.425** on the same "
        "scenes without them, and the final model at **0.960** with the stripes (worst seed 0.956) and "
        "**0.957** without them.\n\n"
        """**Stage 1 took a shortcut.** Geirhos et al. (2020, *Shortcut learning in deep neural networks*) describe how
a network trained to lower its loss adopts whatever decision rule is easiest to find in its training data.
Such a shortcut agrees with the intended rule on test images from the same distribution and fails as soon as
that distribution shifts. Here the stripes are the shortcut: they show on nearly every patch of the object,
so a few patches anywhere on it already name the class, whereas an outline only exists in how many patches
relate to one another, which attention first has to learn to combine. On striped test images the shortcut
and the outline agree, so the accuracy looks fine; on plain shapes they part, and what remains (0.425, about
four times chance) is what the outline alone taught stage 1.

**Why a small ViT takes it.** Dosovitskiy et al. (2020) note that a ViT has much less image-specific inductive
bias than a CNN (Sec. 3.1: no built-in locality, two-dimensional neighbourhood or translation equivariance)
and show that it trails ResNets when trained on ImageNet alone, overtaking them only after pre-training on
ImageNet-21k or JFT-300M (Sec. 4.2-4.3): it has to learn from data what a convolution assumes. Stage 1 had
0.54 M parameters and 256,000 images seen once, and the stripes' easy answer was always there.

**Stage 2 took the shortcut's monopoly away.** A shortcut wins because in the training data it always works.
Stage 2 continued from stage 1's weights for 192,000 more images, half of each batch drawn with the stripes
off. On those images the outline was the only cue, so a model that read the stripes alone was wrong on half
of every batch, and the outline had to carry the class. The other half kept its stripes: striped accuracy
rose a little (0.948 to 0.960) while plain shapes rose from 0.425 to 0.957; the attention rollout still
falls on the object (3.09 times chance). The architecture did not change, only the data, and with it what
the model learned: the paper's point in small, that what a convolution assumes a ViT has to be taught by its
data. Both recipes (`shapes-demo-base`, then `shapes-demo`) and every figure are in the model card.
""")
