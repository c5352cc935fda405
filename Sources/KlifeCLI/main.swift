print("klife")
