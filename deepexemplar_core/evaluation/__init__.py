"""Measuring a colorization: the quality metrics and the classical baselines it is compared with.

* :mod:`.metrics`: ab PSNR, RGB PSNR, SSIM, colourfulness, classifier top-5 agreement;
* :mod:`.baselines`: Reinhard et al. 2001 and Welsh et al. 2002 colour transfer.

Used by ``benchmarks/``, ``training.evaluate`` and the tests; the pipeline never imports it.
"""
