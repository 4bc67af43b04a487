/* placeholder until the live-reload script lands */
