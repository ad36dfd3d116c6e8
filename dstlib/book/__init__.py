"""What the book's section notebooks share: parameters -> runs -> measurements -> verdicts -> page.

A section notebook does, one call each:

    P = book.validate("spectral", globals())    # one-line error before any compute
    plan = book.plan("spectral", P)             # run specs, scaled to budget_minutes; prints the estimate
    runs = book.train(plan)                     # load or train every run (worker processes)
    ... one measurement (book.grid, book.spectral_curves, ...) -> xarray.Dataset
    book.save(ds, plan, "name"); book.save_figure(fig, plan, "name")   # the results folder, atomic
    book.page_verdict(v, plan.shortfalls) ...   # the verdict under the evidence rules
    book.provenance(plan, runs)                 # versions, git commit, run hashes

Modules, one concern each: `params` (validation, profiles, folders),
`plan` (run specs, cost estimate, budget scaling), `evidence` (the rules a
verdict needs), `runs` (training in worker processes), `measure` (the
sections' measurements), `verdicts` (statistics to findings), `report`
(files, the front page, provenance).
"""
from dstlib.book.evidence import MAX_MDD, MIN_UPDATES, TARGET_MDD, planned_updates, training_shortfalls
from dstlib.book.measure import (CorruptedClips, CorruptedImages, attenuated_examples, clip_examples, corruptions_of,
                                 costs, energy, gradcam_maps, grid, mnist_c_grid, ood_accuracy, over_runs, run_of,
                                 spatial_stats, spectral_curves, test_set)
from dstlib.book.params import repo_root, results_dir, store_dir, validate
from dstlib.book.plan import Plan, base_spec, describe, estimate, plan, specs
from dstlib.book.report import (files_note, header, load, markdown, parameters_table, pp, provenance, save,
                                save_figure, save_table3, save_verdict, summary, table1_video_markdown, table2_markdown,
                                table3, table3_markdown, table3_row, video_data_note, video_test_set)
from dstlib.book.runs import train
from dstlib.book.verdicts import (HIGHER_GAIN, association_verdict, best_low_sparsity, concentration_sentence, extreme, gain_energy_association,
                                  image_noise, joint_verdict, page_verdict, power_note, rank_corruptions, status,
                                  verdict_sentence, verdict_table, verdicts, win_tie_loss)
from dstlib.book.cli import main
