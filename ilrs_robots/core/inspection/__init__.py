"""Reactor-site inspection (issue 11), the parts that need no ROS: round files
(:mod:`.rounds`), visual checks (:mod:`.visual`, images rendered for tests and the simulator in
:mod:`.synthetic`) and reports with resumable progress (:mod:`.report`)."""
