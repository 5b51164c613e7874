"""Data-side speed: synthetic generation per difficulty and ImageDataset loading, in ms per image.

python -m benchmarks.bench_datasets [--num 100]
"""

import argparse
import os
import sys
import tempfile
import time

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.image_dataset import ImageDataset
from data.synth import DIFFICULTIES, SyntheticTextDataset, write_db_layout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--num', type=int, default=100)
    args = parser.parse_args()
    for difficulty in DIFFICULTIES:
        dataset = SyntheticTextDataset(num_samples=args.num, seed=0, difficulty=difficulty)
        dataset.generate(0)
        start = time.perf_counter()
        words = sum(len(dataset.generate(i)['lines']) for i in range(args.num))
        elapsed = (time.perf_counter() - start) / args.num * 1000
        print(f'synthetic {difficulty:6s} 320x320: {elapsed:6.2f} ms/image, {words / args.num:.1f} words/image')
    with tempfile.TemporaryDirectory() as root:
        write_db_layout(root, args.num, seed=0, split='train')
        dataset = ImageDataset(data_dir=[root], data_list=[os.path.join(root, 'train_list.txt')])
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        elapsed = (time.perf_counter() - start) / len(dataset) * 1000
        print(f'ImageDataset (320x320 JPEG + DB txt gt): {elapsed:6.2f} ms/image')


if __name__ == '__main__':
    main()
