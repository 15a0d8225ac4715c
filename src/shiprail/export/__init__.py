"""What a release leaves behind: its record, its retrospective, its release package and notes.

``record`` reads everything the store holds about one release; ``history`` derives the timeline,
the rollout as run and the other views from it (pure); ``markdown`` and ``notes`` render them;
``package`` writes the release package and ``verify`` checks one.
"""
