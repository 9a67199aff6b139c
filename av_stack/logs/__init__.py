"""Run logs: MCAP files with Foxglove's schemas, written by ``avsim run`` and read back for replay and datasets.

:mod:`av_stack.logs.topics` lists what a log holds; :class:`~av_stack.logs.recorder.RunRecorder` writes one
during a run; :class:`~av_stack.logs.reader.LogReader` reads it back, frame by frame.
"""
